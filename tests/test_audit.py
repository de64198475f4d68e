from decimal import Decimal

import pytest
from django.db import DatabaseError, transaction

from core.audit import audit_record
from core.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_audit_record_keeps_decimals_exact(acme):
    user = acme.memberships.get().user
    event = audit_record(action="ledger.topup", summary="Top-up 50.00 USD", actor=user, account=acme,
                         data={"amount": Decimal("50.10")})
    event.refresh_from_db()
    assert event.actor_label == "owner@acme.example"
    assert event.data == {"amount": "50.10"}


def test_audit_log_is_append_only_on_postgres(postgres, acme):
    event = audit_record(action="bill.settled", summary="acme 2026-10", account=acme)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(summary="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).summary == "acme 2026-10"

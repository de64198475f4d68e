"""Once per crossing under concurrency (PostgreSQL: select_for_update is a
no-op on SQLite): two evaluations at once raise one alert, and two senders
at once send each email once."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail

from payments.alerts.emails import alert_email_send
from payments.alerts.services import alerts_evaluate
from payments.models import Alert, AlertEmail, AlertSettings
from payments.services import topup_record
from tests.support import failures, run_concurrently, utc

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NOW = utc(2026, 11, 15, 4)


def test_two_concurrent_evaluations_raise_one_alert(postgres, acme):
    AlertSettings.objects.create(account=acme, funds_low_on=True, funds_threshold=Decimal("50.00"))
    outcomes = run_concurrently(*[lambda: alerts_evaluate(account=acme, now=NOW) for _ in range(2)])
    assert failures(outcomes) == []
    assert sorted(len(o) for o in outcomes) == [0, 1]
    alert = Alert.objects.get()
    assert (alert.kind, alert.crossing, alert.state) == ("funds_low", 1, "active")
    assert AlertEmail.objects.count() == 1


def test_two_concurrent_senders_send_one_email(postgres, acme):
    AlertSettings.objects.create(account=acme, funds_low_on=True, funds_threshold=Decimal("50.00"))
    [alert] = alerts_evaluate(account=acme, now=NOW)
    row = alert.emails.get()
    outcomes = run_concurrently(*[lambda: alert_email_send(alert_email_id=row.pk, now=NOW) for _ in range(2)])
    assert failures(outcomes) == []
    assert sorted(outcomes) == [False, True]
    assert len(mail.outbox) == 1
    row.refresh_from_db()
    assert (row.attempts, row.sent_at) == (1, NOW)


def test_two_concurrent_command_runs_across_a_second_crossing(postgres, acme):
    """Below, above, below again with two runs at each step: two alerts, two emails."""
    AlertSettings.objects.create(account=acme, funds_low_on=True, funds_threshold=Decimal("50.00"))
    steps = [(NOW, None), (utc(2026, 11, 15, 5), "80.00"), (utc(2026, 11, 15, 6), None)]
    for at, topup in steps:
        if topup:
            topup_record(account=acme, amount=Decimal(topup), reference=f"t{at.hour}", at=at)
        if at.hour == 6:
            AlertSettings.objects.filter(account=acme).update(funds_threshold=Decimal("100.00"))
        outcomes = run_concurrently(*[lambda at=at: alerts_evaluate(account=acme, now=at) for _ in range(2)])
        assert failures(outcomes) == []
        for row in AlertEmail.objects.filter(sent_at__isnull=True):
            run_concurrently(*[lambda pk=row.pk, at=at: alert_email_send(alert_email_id=pk, now=at) for _ in range(2)])
    assert list(Alert.objects.order_by("crossing").values_list("crossing", "state")) == [(1, "cleared"),
                                                                                         (2, "active")]
    assert len(mail.outbox) == 2

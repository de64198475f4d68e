"""``audit_record``, ``audit_record_bulk``: append events to the audit log (never updated, never deleted)."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from django.utils import timezone

from .bulk import rows_insert
from .models import AuditEvent


def _plain(value: Any) -> Any:
    """JSON-safe copy: Decimals as strings (never floats), dates as ISO text."""
    return json.loads(json.dumps(value, default=lambda v: str(v) if isinstance(v, Decimal) else
                                 v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else str(v)))


def _row(*, action: str, summary: str, at: dt.datetime, actor=None, account_id: int | None = None, obj=None,
         data: dict | None = None) -> dict:
    """One event's column values (attnames), for ``audit_record`` and ``audit_record_bulk``."""
    return {
        "at": at,
        "actor_id": actor.pk if getattr(actor, "pk", None) else None,
        "actor_label": getattr(actor, "email", None) or "system",
        "action": action,
        "account_id": account_id,
        "object_type": obj._meta.label if obj is not None else "",
        "object_id": str(obj.pk) if obj is not None else "",
        "summary": summary[:500],
        "data": _plain(data or {}),
    }


def audit_record(*, action: str, summary: str, actor=None, account=None, obj=None,
                 data: dict | None = None, at: dt.datetime | None = None) -> AuditEvent:
    return AuditEvent.objects.create(**_row(
        action=action, summary=summary, at=at or timezone.now(), actor=actor,
        account_id=account.pk if account is not None else None, obj=obj, data=data))


def audit_record_bulk(*, events: list[dict], at: dt.datetime) -> None:
    """Append many events by the system at once (settlement: one per bill),
    in one statement. Each event is a dict of ``action``, ``summary``,
    ``account_id``, ``obj`` and ``data``, as ``audit_record`` takes them."""
    rows_insert(AuditEvent, [_row(at=at, **event) for event in events])

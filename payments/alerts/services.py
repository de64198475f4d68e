"""Writes: evaluating alerts, the account's settings, a user's opt-out."""
from __future__ import annotations

import datetime as dt
import logging

from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import Account
from core.audit import audit_record

from ..models import Alert, AlertEmail, AlertOptOut, AlertSettings, AlertState
from .conditions import Condition, alert_conditions, alert_settings_get
from .selectors import alert_recipients

log = logging.getLogger("aurora.alerts")

SETTINGS_FIELDS = ("funds_low_on", "funds_threshold", "budget_on", "budget_amount", "budget_basis", "overdrawn_on",
                   "pack_low_on", "pack_low_percent", "pack_expiring_on", "pack_expiring_days", "wire_waiting_on",
                   "wire_waiting_days")


def _detail_json(condition: Condition) -> dict:
    return {k: (str(v) if not isinstance(v, (int, str, bool, type(None))) else v)
            for k, v in condition.detail.items()}


def _alert_raise(*, account: Account, condition: Condition, now: dt.datetime, recipients: list) -> Alert | None:
    """The next crossing of ``condition`` with its emails, or None when a
    concurrent run raised it first (the unique constraints)."""
    last = (Alert.objects.filter(account=account, kind=condition.kind, subject=condition.subject)
            .aggregate(last=Max("crossing"))["last"]) or 0
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                account=account, kind=condition.kind, subject=condition.subject, crossing=last + 1,
                raised_at=now, amount=condition.amount, threshold=condition.threshold, currency=account.currency,
                detail=_detail_json(condition))
            AlertEmail.objects.bulk_create([AlertEmail(alert=alert, user=u, email=u.email) for u in recipients])
    except IntegrityError:
        return None
    return alert


def alerts_evaluate(*, account: Account, now: dt.datetime) -> list[Alert]:
    """Raise the alerts whose condition started to hold, clear those whose
    condition stopped; returns the alerts raised. Idempotent: run twice at
    once (two beat processes, a retried task), the account's row lock and
    the unique (account, kind, subject, crossing) let one raise each
    crossing. Conditions are read under the lock, after any concurrent
    run committed."""
    with transaction.atomic():
        Account.objects.select_for_update().filter(pk=account.pk).first()
        settings = alert_settings_get(account=account)
        conditions = alert_conditions(account=account, now=now, settings=settings)
        active = {(a.kind, a.subject): a for a in Alert.objects.filter(account=account, state=AlertState.ACTIVE)}
        for key, alert in active.items():
            if key not in conditions:
                alert.state = AlertState.CLEARED
                alert.cleared_at = now
                alert.save(update_fields=["state", "cleared_at"])
        raised: list[Alert] = []
        fresh = [c for key, c in conditions.items() if key not in active]
        if fresh:
            recipients = alert_recipients(account=account)
            for condition in fresh:
                alert = _alert_raise(account=account, condition=condition, now=now, recipients=recipients)
                if alert is not None:
                    raised.append(alert)
    for alert in raised:
        log.info("alert raised account=%s kind=%s subject=%s crossing=%s", account.code, alert.kind,
                 alert.subject or "-", alert.crossing)
    return raised


def alert_settings_update(*, account: Account, values: dict, user, now: dt.datetime) -> AlertSettings:
    """Store the owner's settings (``values``: SETTINGS_FIELDS, validated by
    the form) and record the change in the audit log."""
    with transaction.atomic():
        current = AlertSettings.objects.select_for_update().filter(account=account).first()
        row = current or AlertSettings(account=account)
        before = {f: getattr(row, f) for f in SETTINGS_FIELDS}
        for name in SETTINGS_FIELDS:
            setattr(row, name, values[name])
        row.updated_at = now
        row.updated_by = user
        row.full_clean(exclude=["account"])
        row.save()
        changed = {f: [str(before[f]), str(values[f])] for f in SETTINGS_FIELDS if before[f] != values[f]}
        audit_record(action="alerts.settings_changed", actor=user, account=account, obj=row, at=now,
                     summary=f"alert settings changed: {', '.join(changed) or 'nothing'}", data=changed)
    return row


def alert_opt_out_set(*, account: Account, user, opted_out: bool, now: dt.datetime) -> bool:
    """Record whether ``user`` receives the account's alert emails; returns
    the stored choice. Idempotent."""
    if opted_out:
        AlertOptOut.objects.get_or_create(account=account, user=user, defaults={"created_at": now})
    else:
        AlertOptOut.objects.filter(account=account, user=user).delete()
    return opted_out

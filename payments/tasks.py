"""Celery tasks for payments. Thin: take ids, call services.

``payment_receipt_send_task`` is queued after the confirming transaction
commits; it retries with exponential backoff while the mail transport
fails (the receipt is claimed once, so a retry never sends it twice).

The alert tasks: ``alerts_evaluate_due`` (beat, aurora_billing/beat.py)
fans every account out to ``alerts_evaluate_batch``; settlement and usage
imports queue the accounts they touched. ``alert_email`` sends one
recipient's email and retries with backoff while the transport fails.
"""
from __future__ import annotations

import smtplib

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from accounts.models import Account
from core.periods import parse_instant
from core.queue import enqueue_on_commit, task_send
from usage.models import UsageImportLine

from .alerts.emails import MAX_ATTEMPTS, AlertEmailError, alert_email_send, alert_emails_unsent
from .alerts.services import alerts_evaluate
from .models import Payment
from .services import payment_receipt_send


@shared_task(name="payments.tasks.payment_receipt_send_task", autoretry_for=(smtplib.SMTPException, OSError),
             retry_backoff=30, retry_backoff_max=3600, max_retries=8)
def payment_receipt_send_task(payment_id: int) -> list[str]:
    payment = Payment.objects.select_related("account", "created_by").filter(pk=payment_id).first()
    if payment is None:
        return []
    return payment_receipt_send(payment=payment, site_url=settings.SITE_URL, now=timezone.now())


# --- alerts (payments/alerts, docs/alerts.md) ---------------------------------

ALERT_BATCH_SIZE = 200


def _instant(now: str | None):
    return parse_instant(now) if now else timezone.now()


@shared_task(name="payments.tasks.alerts_evaluate_due", bind=True, acks_late=True, ignore_result=True)
def alerts_evaluate_due(self, now: str | None = None, batch_size: int = ALERT_BATCH_SIZE) -> dict:
    """Beat's run: every account in batches to ``alerts_evaluate_batch``, and
    the unsent emails of active alerts queued again (a lost task's catch-up)."""
    at = _instant(now)
    ids = list(Account.objects.order_by("pk").values_list("pk", flat=True))
    queue = (self.request.delivery_info or {}).get("routing_key") or None
    batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
    for batch in batches:
        task_send(alerts_evaluate_batch, kwargs={"account_ids": batch, "now": at.isoformat()}, queue=queue)
    unsent = list(alert_emails_unsent().values_list("pk", flat=True))
    for pk in unsent:
        task_send(alert_email, args=(pk,), queue=queue)
    return {"batches": len(batches), "emails_requeued": len(unsent)}


@shared_task(name="payments.tasks.alerts_evaluate_batch", acks_late=True, ignore_result=True)
def alerts_evaluate_batch(account_ids: list[int], now: str | None = None) -> int:
    """Evaluate the alerts of these accounts; queue the emails of each alert
    raised after its transaction commits. Returns the number raised."""
    at = _instant(now)
    raised = 0
    for account in Account.objects.filter(pk__in=[int(pk) for pk in account_ids]).order_by("pk"):
        for alert in alerts_evaluate(account=account, now=at):
            raised += 1
            for pk in alert.emails.values_list("pk", flat=True):
                enqueue_on_commit(alert_email, pk)
    return raised


@shared_task(
    name="payments.tasks.alert_email",
    autoretry_for=(AlertEmailError,),
    retry_backoff=60,  # seconds: 60, 120, 240, … with jitter, like the statement emails
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=MAX_ATTEMPTS,
    acks_late=True,
    ignore_result=True,
)
def alert_email(alert_email_id: int) -> bool:
    """Send one alert email (once); a transport failure raises and retries."""
    return alert_email_send(alert_email_id=alert_email_id, now=timezone.now())


@shared_task(name="payments.tasks.alerts_after_import", acks_late=True, ignore_result=True)
def alerts_after_import(import_id: int, now: str | None = None) -> int:
    """Evaluate the accounts an import added usage to (budget alerts)."""
    ids = sorted(set(UsageImportLine.objects.filter(usage_import_id=import_id)
                     .order_by().values_list("account_id", flat=True).distinct()))
    return alerts_evaluate_batch(account_ids=ids, now=now) if ids else 0

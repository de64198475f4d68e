"""Celery tasks for statements. Thin: parse arguments, call services.

``statements_send_due`` is called by beat (aurora_billing/beat.py) by its
name; it issues the statement of every bill whose email time has passed
and that was not emailed yet (the 5th, and catch-up on any later run),
then queues one ``statement_email`` per statement. ``statement_email``
retries with exponential backoff while the mail transport fails.
"""
from __future__ import annotations

import datetime as dt
import smtplib

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from core.periods import parse_instant
from core.queue import enqueue_on_commit

from .models import InvoiceRequest, Statement
from .statements import StatementEmailError, statement_email_send, statement_issue, statements_due
from .tax_invoices import tax_invoice_email_send


def _instant(now: str | None) -> dt.datetime:
    """``now`` as an aware instant: an ISO 8601 string with offset, or the clock."""
    return parse_instant(now) if now else timezone.now()


@shared_task(name="invoices.tasks.statements_send_due")
def statements_send_due(now: str | None = None) -> dict:
    """Issue due statements and queue their emails. ``now``: ISO 8601 instant
    with offset (catch-up or tests); default the current time."""
    at = _instant(now)
    queued = []
    for bill in statements_due(now=at):
        statement = statement_issue(bill=bill, now=at)
        enqueue_on_commit(statement_email, statement.pk, now)
        queued.append(statement.number)
    return {"queued": len(queued), "statements": queued}


@shared_task(
    name="invoices.tasks.statement_email",
    autoretry_for=(StatementEmailError,),
    retry_backoff=60,  # seconds: 60, 120, 240, … with jitter
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=10,
)
def statement_email(statement_id: int, now: str | None = None) -> bool:
    """Email one statement (once); a transport failure raises and retries."""
    statement = Statement.objects.get(pk=statement_id)
    return statement_email_send(statement=statement, now=_instant(now)).sent


@shared_task(
    name="invoices.tasks.tax_invoice_decided_send",
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=60,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=10,
)
def tax_invoice_decided_send(request_id: int) -> list[str]:
    """Tell the customer their tax invoice was issued (with the file) or rejected, once."""
    request = InvoiceRequest.objects.select_related("account", "requested_by").get(pk=request_id)
    return tax_invoice_email_send(request=request, site_url=settings.SITE_URL, now=timezone.now())

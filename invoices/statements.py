"""Statements: numbering, issuing (PDF rendered once and stored) and the
billing email on the 5th (billing-rules §1 "Statement email time").

- ``statement_issue`` gives a bill its statement exactly once: a number
  ``AUR-<year>-<000001>`` sequential per UTC+8 year of issue (the year's
  StatementCounter row is locked, and the number is taken in the same
  transaction as the Statement row, so numbers are never reused and have
  no gaps), the PDF rendered and stored through Django's default storage
  with its SHA-256. The download and the email attachment read those bytes.
- ``statement_email_send`` emails a statement once: the Statement row is
  locked while sending, ``emailed_at`` records success, a transport failure
  is recorded (``email_attempts``, ``last_email_error``) and raised as
  StatementEmailError so the caller (the Celery task) retries with backoff.
- ``statements_due`` lists bills whose email time has passed and whose
  statement was not emailed yet: the dispatcher on the 5th and its
  catch-up on any later run.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import smtplib
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string

from accounts.selectors import account_recipients
from core.money import ZERO_MONEY
from core.periods import Period, billing_day

from .models import Bill, BillLine, Statement, StatementCounter
from .pdf import billing_contact, console_url, repay_url, statement_pdf_render

log = logging.getLogger("aurora.statements")

NUMBER_PREFIX = "AUR"
NO_RECIPIENTS = "no active owner or accountant to email"


class StatementEmailError(Exception):
    """The outgoing mail transport failed; the statement stays unsent."""


class StatementNotDue(ValueError):
    """The statement email time of the period has not come."""


# --- numbering and issuing ---------------------------------------------------

def statement_number_next(*, year: int) -> str:
    """The next statement number of ``year``; call inside the transaction
    that stores the statement (the counter row stays locked until then)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("statement_number_next must run inside a transaction")
    counter, _ = StatementCounter.objects.select_for_update().get_or_create(year=year)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return f"{NUMBER_PREFIX}-{year}-{counter.last_number:06d}"


def statement_issue(*, bill: Bill, now: dt.datetime) -> Statement:
    """The statement of ``bill``: the existing one, or a new one numbered,
    rendered and stored now. Idempotent and safe to call concurrently."""
    existing = Statement.objects.filter(bill=bill).first()
    if existing is not None:
        return existing
    stored_name = None
    try:
        with transaction.atomic():
            bill = Bill.objects.select_for_update(of=("self",)).select_related("account").get(pk=bill.pk)
            existing = Statement.objects.filter(bill=bill).first()
            if existing is not None:
                return existing
            number = statement_number_next(year=billing_day(now).year)
            pdf = statement_pdf_render(bill=bill, number=number, issued_at=now)
            statement = Statement(bill=bill, number=number, issued_at=now, sha256=hashlib.sha256(pdf).hexdigest())
            statement.pdf.save(f"{number}.pdf", ContentFile(pdf), save=False)
            stored_name = statement.pdf.name
            statement.save()
    except BaseException:
        if stored_name:  # the row was rolled back: no file without its statement
            Statement._meta.get_field("pdf").storage.delete(stored_name)
        raise
    log.info("statement issued number=%s account=%s period=%s", number, bill.account.code, bill.period)
    return statement


def statement_pdf_bytes(*, statement: Statement) -> bytes:
    """The stored PDF of ``statement``, checked against its SHA-256."""
    with statement.pdf.open("rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != statement.sha256:
        raise RuntimeError(f"stored PDF of statement {statement.number} does not match its SHA-256")
    return data


def statement_filename(*, statement: Statement) -> str:
    """Download and attachment name, e.g. ``aurora-statement-acme-2026-10.pdf``."""
    return f"aurora-statement-{statement.bill.account.code}-{statement.bill.period}.pdf"


# --- which statements are due ------------------------------------------------

def latest_statement_period(*, now: dt.datetime) -> Period:
    """The most recent period whose statement email time has passed."""
    candidate = Period.current(now).previous()
    return candidate if candidate.is_statement_due(now) else candidate.previous()


def statements_due(*, now: dt.datetime, period: Period | None = None) -> QuerySet[Bill]:
    """Bills whose statement email time has passed and whose statement has
    not been emailed, oldest period first (``period``: that period only)."""
    latest = latest_statement_period(now=now)
    bills = Bill.objects.filter(period__lte=str(latest), settled_at__lte=now).filter(
        Q(statement__isnull=True) | Q(statement__emailed_at__isnull=True))
    if period is not None:
        bills = bills.filter(period=str(period))
    return bills.select_related("account").order_by("period", "account__code")


# --- the email -----------------------------------------------------------------

@dataclass
class ServiceTotal:
    """One service item over all regions (amounts in the bill's currency)."""

    name: str
    amount: Decimal = ZERO_MONEY
    paid: Decimal = ZERO_MONEY
    balance: Decimal = ZERO_MONEY
    status: str = "Paid"


def statement_email_context(*, statement: Statement) -> dict:
    """The period's summary (current balances) for the email bodies."""
    bill = statement.bill
    period = Period.parse(bill.period)
    totals: dict[str, ServiceTotal] = {}
    for line in BillLine.objects.filter(bill=bill).select_related("service").order_by("position"):
        row = totals.setdefault(line.service_id, ServiceTotal(line.service.name))
        row.amount += line.amount
        row.paid += line.paid
        row.balance += line.balance
        if line.status == "Overdrawn":
            row.status = "Overdrawn"
    rows = list(totals.values())
    return {
        "statement": statement,
        "account": bill.account,
        "period": period,
        "currency": bill.currency,
        "rows": rows,
        "total_amount": bill.total_amount,
        "total_paid": sum((r.paid for r in rows), ZERO_MONEY),
        "amount_due": sum((r.balance for r in rows), ZERO_MONEY),
        "console_url": console_url(period=period),
        "repay_url": repay_url(),
        "billing_contact": billing_contact(),
        "filename": statement_filename(statement=statement),
    }


def statement_email_message(*, statement: Statement, recipients: list[str]) -> EmailMultiAlternatives:
    """The billing email: plain text and HTML bodies, the stored PDF attached."""
    context = statement_email_context(statement=statement)
    subject = " ".join(render_to_string("email/statement_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("email/statement.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        headers={"X-Aurora-Statement": statement.number},
    )
    message.attach_alternative(render_to_string("email/statement.html", context), "text/html")
    message.attach(context["filename"], statement_pdf_bytes(statement=statement), "application/pdf")
    return message


@dataclass
class EmailOutcome:
    sent: bool
    reason: str = ""
    recipients: list[str] = field(default_factory=list)


def statement_email_send(*, statement: Statement, now: dt.datetime, resend: bool = False) -> EmailOutcome:
    """Email ``statement`` to the account's owners and accountants, once.

    Not sent when it was sent already (unless ``resend``, a staff action),
    when the period's email time has not come (StatementNotDue; ``resend``
    overrides) or when the account has nobody to send to (recorded in
    ``last_email_error``). A transport failure is recorded and raised as
    StatementEmailError. The row lock keeps two workers from both sending."""
    error: Exception | None = None
    with transaction.atomic():
        statement = (Statement.objects.select_for_update(of=("self",)).select_related("bill__account")
                     .get(pk=statement.pk))
        period = Period.parse(statement.bill.period)
        if statement.emailed_at is not None and not resend:
            return EmailOutcome(sent=False, reason="already sent")
        if not resend and not period.is_statement_due(now):
            raise StatementNotDue(f"the statement of {period} is emailed from {period.statement_time_label()}")
        recipients = account_recipients(account=statement.bill.account)
        if not recipients:
            statement.last_email_error = NO_RECIPIENTS
            statement.save(update_fields=["last_email_error"])
            log.warning("statement %s not emailed: %s", statement.number, NO_RECIPIENTS)
            return EmailOutcome(sent=False, reason=NO_RECIPIENTS)
        message = statement_email_message(statement=statement, recipients=recipients)
        statement.email_attempts += 1
        try:
            message.send(fail_silently=False)
        except (smtplib.SMTPException, OSError) as exc:
            error = exc
            statement.last_email_error = f"{now.isoformat()}: {type(exc).__name__}: {exc}"[:2000]
        else:
            statement.emailed_at = now
            statement.email_recipients = ", ".join(recipients)
            statement.last_email_error = ""
        statement.save(update_fields=["email_attempts", "last_email_error", "emailed_at", "email_recipients"])
    if error is not None:
        log.warning("statement %s email failed (attempt %s): %s", statement.number, statement.email_attempts, error)
        raise StatementEmailError(str(error)) from error
    log.info("statement %s emailed to %s", statement.number, ", ".join(recipients))
    return EmailOutcome(sent=True, recipients=recipients)

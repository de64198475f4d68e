"""Statements: numbering, issuing (the issue-time PDF archived with its
SHA-256), rendering as of a download or an email, and the billing email on
the 5th (billing-rules §1 "Statement email time").

- ``statement_issue`` gives a bill its statement exactly once: a number
  ``AUR-<year>-<000001>`` sequential per UTC+8 year of issue (the year's
  StatementCounter row is locked, and the number is taken in the same
  transaction as the Statement row, so numbers are never reused and have
  no gaps), the PDF rendered and archived through Django's default storage
  with its SHA-256 and each line's figures at issue (``issued_lines``); an
  audit event records the number and the checksum (append-only).
- ``statement_document`` renders a statement again as of ``now``: billed
  figures unchanged, paid / balance / status current, the payments since
  issue and the amount due now. The download and the email attachment are
  such renderings; the email bodies come from the same snapshot as their
  attachment, so they never disagree.
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
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import translation

from accounts.selectors import account_recipients_by_language
from core.audit import audit_record
from core.money import ZERO_MONEY
from core.periods import Period, billing_day

from .models import Bill, Statement, StatementCounter
from .pdf import (
    StatementSnapshot,
    billing_contact,
    console_url,
    instant_label,
    repay_url,
    statement_pdf_render,
    statement_snapshot,
)

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
    rendered and stored now. Idempotent and safe to call concurrently.
    Earlier bills of the account without a statement are issued first, in
    period order, so an account's statement numbers follow its periods
    whichever PDF is downloaded first."""
    existing = Statement.objects.filter(bill=bill).first()
    if existing is not None:
        return existing
    for earlier in Bill.objects.filter(account_id=bill.account_id, period__lt=bill.period,
                                       statement__isnull=True).order_by("period"):
        _statement_issue_one(bill=earlier, now=now)
    return _statement_issue_one(bill=bill, now=now)


def _statement_issue_one(*, bill: Bill, now: dt.datetime) -> Statement:
    stored_name = None
    try:
        with transaction.atomic():
            bill = Bill.objects.select_for_update(of=("self",)).select_related("account").get(pk=bill.pk)
            existing = Statement.objects.filter(bill=bill).first()
            if existing is not None:
                return existing
            number = statement_number_next(year=billing_day(now).year)
            # the archived issue-time PDF is in the account's document language
            with translation.override(bill.account.document_language):
                snapshot = statement_snapshot(bill=bill, number=number, issued_at=now, as_of=now)
                pdf = statement_pdf_render(snapshot=snapshot)
            statement = Statement(bill=bill, number=number, issued_at=now, sha256=hashlib.sha256(pdf).hexdigest(),
                                  issued_lines=snapshot.issued_lines_json())
            statement.pdf.save(f"{number}.pdf", ContentFile(pdf), save=False)
            stored_name = statement.pdf.name
            statement.save()
            audit_record(action="statement.issued", account=bill.account, obj=statement, at=now,
                         summary=f"statement {number} for {bill.period} issued; archived PDF SHA-256 "
                                 f"{statement.sha256}",
                         data={"number": number, "period": bill.period, "sha256": statement.sha256,
                               "file": stored_name, "bytes": len(pdf), "amount_due": snapshot.amount_due})
    except BaseException:
        if stored_name:  # the row was rolled back: no file without its statement
            Statement._meta.get_field("pdf").storage.delete(stored_name)
        raise
    log.info("statement issued number=%s account=%s period=%s", number, bill.account.code, bill.period)
    return statement


@dataclass(frozen=True)
class ArchiveCheck:
    """The archived PDF against its recorded SHA-256 (staff audit)."""

    ok: bool
    message: str


def statement_archive_check(*, statement: Statement) -> ArchiveCheck:
    if not statement.pdf:
        return ArchiveCheck(False, "no archived PDF")
    try:
        with statement.pdf.open("rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError as exc:
        return ArchiveCheck(False, f"archived PDF unreadable: {exc}")
    if digest != statement.sha256:
        return ArchiveCheck(False, f"archived PDF does NOT match the recorded SHA-256: its SHA-256 is {digest}")
    return ArchiveCheck(True, "archived PDF matches the recorded SHA-256")


def statement_document(*, statement: Statement, now: dt.datetime, language: str | None = None
                       ) -> tuple[StatementSnapshot, bytes]:
    """The statement rendered as of ``now`` (one snapshot of its lines) and
    its PDF bytes, in ``language`` (default: the active language). At the
    instant of issue with the issue figures and in the account's document
    language, these are the archived bytes (rendering is deterministic);
    renderings in other languages are made on demand and not archived."""
    with translation.override(language or translation.get_language()):
        snapshot = statement_snapshot(bill=statement.bill, number=statement.number, issued_at=statement.issued_at,
                                      as_of=now, issued_lines=statement.issued_lines)
        return snapshot, statement_pdf_render(snapshot=snapshot)


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


def statement_email_context(*, statement: Statement, snapshot: StatementSnapshot) -> dict:
    """The period's summary for the email bodies, from the snapshot the
    attachment is rendered from."""
    bill = statement.bill
    period = Period.parse(bill.period)
    totals: dict[str, ServiceTotal] = {}
    for line in snapshot.lines:
        row = totals.setdefault(line.service_id, ServiceTotal(line.service_name))
        row.amount += line.amount
        row.paid += line.paid
        row.balance += line.balance
        if line.status == "Overdrawn":
            row.status = "Overdrawn"
    return {
        "statement": statement,
        "account": bill.account,
        "period": period,
        "currency": bill.currency,
        "rows": list(totals.values()),
        "total_amount": bill.total_amount,
        "total_paid": snapshot.total_paid,
        "amount_due": snapshot.amount_due,
        "as_of_label": instant_label(snapshot.as_of),
        "issued_label": instant_label(snapshot.issued_at),
        "paid_since_issue": snapshot.paid_since_issue,
        "console_url": console_url(period=period),
        "repay_url": repay_url(),
        "billing_contact": billing_contact(),
        "filename": statement_filename(statement=statement),
    }


def statement_email_message(*, statement: Statement, recipients: list[str], now: dt.datetime,
                            language: str | None = None) -> EmailMultiAlternatives:
    """The billing email in ``language`` (default: the account's document
    language): plain text and HTML bodies and the attached PDF, all from one
    snapshot of the lines as of ``now``."""
    language = language or statement.bill.account.document_language
    with translation.override(language):
        snapshot, pdf = statement_document(statement=statement, now=now, language=language)
        context = statement_email_context(statement=statement, snapshot=snapshot)
        subject = " ".join(render_to_string("email/statement_subject.txt", context).split())
        message = EmailMultiAlternatives(
            subject=subject,
            body=render_to_string("email/statement.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=recipients,
            headers={"X-Aurora-Statement": statement.number, "Content-Language": language},
        )
        message.attach_alternative(render_to_string("email/statement.html", context), "text/html")
    message.attach(context["filename"], pdf, "application/pdf")
    return message


def statement_email_messages(*, statement: Statement, now: dt.datetime) -> list[EmailMultiAlternatives]:
    """The billing emails of ``statement``: one per recipient language
    (each owner's or accountant's preference, else the account's document
    language), each rendered once for all its recipients."""
    groups = account_recipients_by_language(account=statement.bill.account)
    return [statement_email_message(statement=statement, recipients=emails, now=now, language=language)
            for language, emails in groups.items()]


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
        messages = statement_email_messages(statement=statement, now=now)
        recipients = [email for message in messages for email in message.to]
        if not recipients:
            statement.last_email_error = NO_RECIPIENTS
            statement.save(update_fields=["last_email_error"])
            log.warning("statement %s not emailed: %s", statement.number, NO_RECIPIENTS)
            return EmailOutcome(sent=False, reason=NO_RECIPIENTS)
        statement.email_attempts += 1
        try:
            # one connection for every language's message; a failure leaves
            # the statement unsent (the retry sends every language again)
            get_connection().send_messages(messages)
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

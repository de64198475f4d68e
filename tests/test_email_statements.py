"""The billing email on the 5th at 10:00 UTC+8: recipients, bodies and the
attached PDF; exactly once; retried when SMTP fails; never before the 5th;
caught up when the 5th was missed. Only the mail transport is replaced."""
from __future__ import annotations

import io
import smtplib

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.core.management import CommandError, call_command

from accounts.models import Membership, User
from aurora_billing.settlement import bill_settle
from core.periods import Period
from invoices.models import Statement
from invoices.statements import StatementEmailError, StatementNotDue, statement_email_send, statement_issue
from invoices.tasks import statements_send_due
from tests.support import PASSWORD, add_usage, utc

from .test_statement import settle_worked_example, use_private_media

pytestmark = pytest.mark.django_db

ON_THE_5TH = "2026-11-05T10:00:00+08:00"
JUST_BEFORE = "2026-11-05T09:59:59+08:00"
ON_THE_4TH = "2026-11-04T12:00:00+08:00"


class FlakySMTPBackend(BaseEmailBackend):
    """The SMTP transport, failing the first ``failures`` sends (then locmem)."""

    failures = 0
    attempts = 0

    def send_messages(self, messages):
        type(self).attempts += 1
        if type(self).attempts <= type(self).failures:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return LocmemBackend().send_messages(messages)


@pytest.fixture
def worked_bill(acme, settings, tmp_path):
    use_private_media(settings, tmp_path)
    return settle_worked_example(acme)


@pytest.fixture
def smtp(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings


@pytest.fixture
def flaky(settings):
    settings.EMAIL_BACKEND = f"{__name__}.FlakySMTPBackend"
    FlakySMTPBackend.attempts = 0
    FlakySMTPBackend.failures = 1
    return FlakySMTPBackend


@pytest.fixture
def team(worked_bill):
    """Owner (from the fixture), an accountant, a viewer and an inactive accountant."""
    account = worked_bill.account
    for email, role, active in (("books@acme.example", "accountant", True), ("viewer@acme.example", "viewer", True),
                                ("gone@acme.example", "accountant", False)):
        user = User.objects.create_user(email, PASSWORD, is_active=active)
        Membership.objects.create(user=user, account=account, role=role)
    return worked_bill


def command(*args, stdout=None, stderr=None):
    """``manage.py send_statements`` on 2026-11-20 (after October's email time)."""
    with time_machine.travel(utc(2026, 11, 20, 4), tick=False):
        call_command("send_statements", *args, stdout=stdout or io.StringIO(), stderr=stderr or io.StringIO())


def dispatch(now: str, django_capture_on_commit_callbacks) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        return statements_send_due(now)


def test_email_to_owners_and_accountants_with_bodies_and_pdf(smtp, team, django_capture_on_commit_callbacks):
    result = dispatch(ON_THE_5TH, django_capture_on_commit_callbacks)
    assert result == {"queued": 1, "statements": ["AUR-2026-000001"]}
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["books@acme.example", "owner@acme.example"]
    assert message.from_email == "Aurora SendCloud Billing <billing@aurora.example>"
    assert message.subject == "Aurora SendCloud statement AUR-2026-000001 for October 2026: 1.72 USD due"
    text = message.body
    assert "statement of Acme Ltd (acme) for October 2026" in text
    assert "- Email: charges 5.40, paid 5.00, balance 0.40 (Overdrawn)" in text
    assert "- Data Flow: charges 1.32, paid 0.00, balance 1.32 (Overdrawn)" in text
    assert "Amount due:          1.72 USD" in text
    assert "http://127.0.0.1:8000/billing/?period=2026-10" in text
    assert "http://127.0.0.1:8000/billing/repay/" in text
    (html, mimetype), = message.alternatives
    assert mimetype == "text/html"
    assert "1.72 USD" in html and 'href="http://127.0.0.1:8000/billing/?period=2026-10"' in html
    assert "Pay 1.72 USD" in html
    (filename, content, attachment_type), = message.attachments
    statement = Statement.objects.get()
    assert (filename, attachment_type) == ("aurora-statement-acme-2026-10.pdf", "application/pdf")
    assert content == statement.pdf.read()  # the same bytes as the download
    assert statement.emailed_at == utc(2026, 11, 5, 2)
    assert statement.email_recipients == "books@acme.example, owner@acme.example"
    assert (statement.email_attempts, statement.last_email_error) == (1, "")


def test_sending_twice_sends_once(smtp, worked_bill, django_capture_on_commit_callbacks):
    dispatch(ON_THE_5TH, django_capture_on_commit_callbacks)
    second = dispatch("2026-11-06T10:00:00+08:00", django_capture_on_commit_callbacks)
    assert second == {"queued": 0, "statements": []}
    statement = Statement.objects.get()
    assert statement_email_send(statement=statement, now=utc(2026, 11, 7)).reason == "already sent"
    out = io.StringIO()
    command(stdout=out)
    assert len(mail.outbox) == 1
    assert out.getvalue().strip() == "Statements: 0 emailed, 0 skipped, 0 failed"
    assert Statement.objects.get().email_attempts == 1


def test_smtp_failure_then_success_sends_one_email(flaky, worked_bill, django_capture_on_commit_callbacks,
                                                   monkeypatch):
    from aurora_billing.celery import app
    from invoices.tasks import statement_email

    # As on a worker: the failure is not propagated to the caller but retried
    # (in-process, Celery re-applies a retried task at once, without the countdown).
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    assert statement_email.autoretry_for == (StatementEmailError,)
    assert (statement_email.retry_backoff, statement_email.max_retries) == (60, 10)
    result = dispatch(ON_THE_5TH, django_capture_on_commit_callbacks)
    assert result["queued"] == 1
    assert flaky.attempts == 2  # failed once, then sent
    assert len(mail.outbox) == 1
    statement = Statement.objects.get()
    assert statement.email_attempts == 2
    assert statement.emailed_at == utc(2026, 11, 5, 2)
    assert statement.last_email_error == ""


def test_smtp_failure_is_recorded_and_the_command_fails(flaky, worked_bill):
    flaky.failures = 1
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 statement"):
        command(stderr=err)
    statement = Statement.objects.get()
    assert statement.emailed_at is None and statement.email_attempts == 1
    assert "SMTPServerDisconnected: Connection unexpectedly closed" in statement.last_email_error
    assert "error: acme 2026-10 AUR-2026-000001: Connection unexpectedly closed" in err.getvalue()
    out = io.StringIO()
    command("--period", "2026-10", stdout=out)  # the transport is back
    assert out.getvalue().strip() == "Statements: 1 emailed, 0 skipped, 0 failed, 0 sent before"
    assert len(mail.outbox) == 1
    assert Statement.objects.get().email_attempts == 2


@pytest.mark.parametrize("now", [ON_THE_4TH, JUST_BEFORE, "2026-11-01T15:00:00+08:00"])
def test_nothing_is_sent_before_the_5th_at_10(smtp, worked_bill, now, django_capture_on_commit_callbacks):
    assert dispatch(now, django_capture_on_commit_callbacks) == {"queued": 0, "statements": []}
    assert mail.outbox == []
    assert not Statement.objects.exists()
    statement = statement_issue(bill=worked_bill, now=utc(2026, 11, 2))
    with pytest.raises(StatementNotDue, match="2026-11-05 10:00 UTC\\+8"):
        statement_email_send(statement=statement, now=utc(2026, 11, 4, 4))
    assert mail.outbox == []


def test_missed_5th_is_caught_up_oldest_first(smtp, worked_bill, make_account,
                                              django_capture_on_commit_callbacks):
    # September's bill of another account was never emailed either.
    other = make_account(code="globex", name="Globex", users=(("cfo@globex.example", "owner"),))
    add_usage(other, "sg", "email", "2026-09-03", 10)
    bill_settle(account=other, period=Period(2026, 9), now=utc(2026, 10, 1, 7))
    result = dispatch("2026-11-19T10:00:00+08:00", django_capture_on_commit_callbacks)
    assert result["queued"] == 2
    assert [m.subject.split(" for ")[1].split(":")[0] for m in mail.outbox] == ["September 2026", "October 2026"]
    assert [m.to for m in mail.outbox] == [["cfo@globex.example"], ["owner@acme.example"]]


def test_send_statements_refuses_a_period_before_its_email_time(smtp, worked_bill):
    with pytest.raises(CommandError, match="2026-12-05 10:00 UTC\\+8"):
        command("--period", "2026-11")
    with pytest.raises(CommandError, match="not a period"):
        command("--period", "nov")
    assert mail.outbox == []


def test_account_without_recipients_is_skipped_and_recorded(smtp, worked_bill):
    Membership.objects.filter(account=worked_bill.account).delete()
    err = io.StringIO()
    out = io.StringIO()
    command(stdout=out, stderr=err)
    assert out.getvalue().strip() == "Statements: 0 emailed, 1 skipped, 0 failed"
    assert "no active owner or accountant" in err.getvalue()
    assert Statement.objects.get().last_email_error == "no active owner or accountant to email"
    assert mail.outbox == []


def test_staff_can_email_a_statement_again(smtp, worked_bill, client):
    from django.urls import reverse

    statement = statement_issue(bill=worked_bill, now=utc(2026, 11, 5, 2))
    statement_email_send(statement=statement, now=utc(2026, 11, 5, 2))
    client.force_login(User.objects.create_superuser("admin@aurora.example", PASSWORD))
    with time_machine.travel(utc(2026, 11, 20, 4), tick=False):
        response = client.post(reverse("admin:invoices_statement_changelist"),
                               {"action": "email_again", "_selected_action": [statement.pk]}, follow=True)
    assert "1 statement(s) emailed." in response.content.decode()
    assert len(mail.outbox) == 2
    # the first email's attachment is the archived rendering; the resend is
    # rendered as of its own time, with the same (unpaid) figures
    assert mail.outbox[0].attachments[0][1] == Statement.objects.get().pdf.read()
    again = attachment_text(mail.outbox[1])
    assert "Balances as of 2026-11-20 12:00 UTC+8" in again and "Total (USD) 6.72 5.00 1.72" in again
    assert "No payments since the statement was issued on 2026-11-05 10:00 UTC+8." in again
    assert "Balances as of 2026-11-20 12:00 UTC+8" in mail.outbox[1].body


# --- body and attachment from one snapshot at send time ---------------------------

def attachment_text(message) -> str:
    from .test_statement import pdf_text

    (_, content, _), = message.attachments
    return " ".join(pdf_text(content).split())


def test_repaid_before_the_5th_body_and_attachment_say_nothing_due(smtp, worked_bill, settings,
                                                                    django_capture_on_commit_callbacks):
    from .test_statement import repay_in_full

    settings.PAYMENTS_SANDBOX = True
    statement_issue(bill=worked_bill, now=utc(2026, 11, 2, 1))  # downloaded on the 2nd: 1.72 due
    repay_in_full(worked_bill, now=utc(2026, 11, 3, 1))
    mail.outbox = []  # the payment receipt is not under test here
    dispatch(ON_THE_5TH, django_capture_on_commit_callbacks)
    message, = [m for m in mail.outbox if "statement" in m.subject]
    assert message.subject == "Aurora SendCloud statement AUR-2026-000001 for October 2026: nothing due"
    assert "Amount due:          0.00 USD" in message.body
    assert "Nothing is due for this period." in message.body
    assert "Balances as of 2026-11-05 10:00 UTC+8" in message.body
    assert "Paid since the statement was issued on 2026-11-02 09:00 UTC+8: 1.72 USD" in message.body
    (html, _), = message.alternatives
    assert "0.00 USD" in html and "Pay 1.72" not in html
    text = attachment_text(message)
    assert "Balances as of 2026-11-05 10:00 UTC+8" in text
    assert "AMOUNT DUE NOW 0.00 USD" in text and "Total (USD) 6.72 6.72 0.00" in text
    assert "Payments since issue" in text and "Overdrawn" not in text
    # the archive keeps what was issued on the 2nd
    archived = " ".join(pdf_text_of(Statement.objects.get()).split())
    assert "1.72 USD" in archived and "Overdrawn" in archived


def test_overdrawn_body_and_attachment_say_the_same_amount(smtp, worked_bill, django_capture_on_commit_callbacks):
    dispatch(ON_THE_5TH, django_capture_on_commit_callbacks)
    message, = mail.outbox
    assert "Amount due:          1.72 USD" in message.body
    assert "Balances as of 2026-11-05 10:00 UTC+8" in message.body
    text = attachment_text(message)
    assert "Balances as of 2026-11-05 10:00 UTC+8" in text
    assert "AMOUNT DUE 1.72 USD" in text and "Total (USD) 6.72 5.00 1.72" in text


def pdf_text_of(statement: Statement) -> str:
    from .test_statement import pdf_text

    return pdf_text(statement.pdf.read())

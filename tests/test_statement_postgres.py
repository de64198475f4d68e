"""Concurrency on PostgreSQL: statement numbers stay unique and gapless when
statements are issued at the same time; a statement is emailed once even
when two workers send it at the same moment."""
from __future__ import annotations

import time

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend

from accounts.models import Account
from invoices.models import Bill, Statement, StatementCounter
from invoices.statements import statement_email_send, statement_issue
from tests.support import failures, run_concurrently, utc

from .test_statement import use_private_media

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
NOW = utc(2026, 11, 5, 2)


class SlowSMTPBackend(LocmemBackend):
    """A transport that takes a while (the window two senders could share)."""

    def send_messages(self, messages):
        time.sleep(0.3)
        return super().send_messages(messages)


@pytest.fixture
def bills(postgres, settings, tmp_path, monkeypatch):
    use_private_media(settings, tmp_path)
    import invoices.statements

    def slow_render(*, snapshot):  # a stand-in renderer that takes its time
        time.sleep(0.05)
        return f"%PDF-1.7 {snapshot.number}".encode()

    monkeypatch.setattr(invoices.statements, "statement_pdf_render", slow_render)
    out = []
    for i in range(6):
        account = Account.objects.create(code=f"a{i}", name=f"A{i}")
        out.append(Bill.objects.create(account=account, period="2026-10", currency="USD"))
    return out


def test_concurrent_issues_get_unique_sequential_numbers(bills):
    # every bill twice: two requests racing for the same statement
    outcomes = run_concurrently(*[lambda b=b: statement_issue(bill=b, now=NOW) for b in bills + bills])
    assert not failures(outcomes), failures(outcomes)
    numbers = sorted(Statement.objects.values_list("number", flat=True))
    assert numbers == [f"AUR-2026-{n:06d}" for n in range(1, 7)]
    assert StatementCounter.objects.get(year=2026).last_number == 6
    for statement in Statement.objects.all():
        assert statement.pdf.read() == f"%PDF-1.7 {statement.number}".encode()


def test_two_senders_email_once(bills, settings):
    from accounts.models import Membership, User

    settings.EMAIL_BACKEND = f"{__name__}.SlowSMTPBackend"
    bill = bills[0]
    user = User.objects.create_user("owner@a0.example", "x-pass-123")
    Membership.objects.create(user=user, account=bill.account, role="owner")
    statement = statement_issue(bill=bill, now=NOW)
    mail.outbox = []
    outcomes = run_concurrently(*[lambda: statement_email_send(statement=statement, now=NOW)] * 2)
    assert not failures(outcomes), failures(outcomes)
    assert len(mail.outbox) == 1
    assert Statement.objects.get(pk=statement.pk).email_attempts == 1

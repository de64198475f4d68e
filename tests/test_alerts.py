"""Alerts (issue #18, docs/alerts.md): every kind raised once per crossing,
cleared when its condition stops, emailed once per recipient (retried when
the transport fails), the settings and the opt-out through HTTP, the notice
strip on the summary page and the alerts page's history."""
from __future__ import annotations

import io
import smtplib
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.models import Membership, User
from core.audit import AuditEvent
from payments.alerts.emails import alert_email_message
from payments.alerts.services import alerts_evaluate
from payments.models import Alert, AlertEmail, AlertOptOut, AlertSettings, Payment
from payments.services import topup_record
from tests.support import PASSWORD, add_pack, add_price, add_usage, utc
from tests.support.payments import overdrawn

pytestmark = pytest.mark.django_db

NOV_15 = utc(2026, 11, 15, 4)  # 12:00 UTC+8
SETTINGS = {"funds_low_on": "on", "funds_threshold": "50", "budget_amount": "", "budget_basis": "month_to_date",
            "overdrawn_on": "on", "pack_low_on": "on", "pack_low_percent": "20", "pack_expiring_on": "on",
            "pack_expiring_days": "7", "wire_waiting_on": "on", "wire_waiting_days": "5"}


class FlakySMTPBackend(BaseEmailBackend):
    """The SMTP transport, failing the first ``failures`` sends (then locmem)."""

    failures = 0
    attempts = 0

    def send_messages(self, messages):
        type(self).attempts += 1
        if type(self).attempts <= type(self).failures:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return LocmemBackend().send_messages(messages)


def signed_in(email: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(email=email))
    return client


@pytest.fixture
def team(acme):
    """acme's owner, an accountant and a viewer (in that order of addresses: books, owner, viewer)."""
    for email, role in (("books@acme.example", "accountant"), ("viewer@acme.example", "viewer")):
        Membership.objects.create(user=User.objects.create_user(email, PASSWORD), account=acme, role=role)
    return acme


def send_alerts(now) -> str:
    out = io.StringIO()
    with time_machine.travel(now, tick=False):
        call_command("send_alerts", stdout=out)
    return out.getvalue()


def save_settings(client, **changes):
    data = {**SETTINGS, **changes}
    return client.post("/billing/alerts/", {k: v for k, v in data.items() if v is not None})


# --- funds: once per crossing ---------------------------------------------------

def test_funds_below_the_threshold_alert_once_per_crossing(team):
    owner = signed_in("owner@acme.example")
    topup_record(account=team, amount=Decimal("30.00"), reference="t1", at=utc(2026, 11, 1))
    assert save_settings(owner).status_code == 302
    assert send_alerts(NOV_15).splitlines() == [
        "sent acme funds_low (crossing 1) to books@acme.example",
        "sent acme funds_low (crossing 1) to owner@acme.example",
        "Alerts: 1 raised, 2 emails sent, 0 not sent, 0 failed (1 accounts)",
    ]
    assert sorted(m.to[0] for m in mail.outbox) == ["books@acme.example", "owner@acme.example"]
    assert mail.outbox[0].subject == "Aurora SendCloud alert: Funds below 50.00 USD (acme)"
    assert "The prepaid funds are 30.00 USD, below the alert threshold of 50.00 USD." in mail.outbox[0].body
    assert "http://127.0.0.1:8000/billing/topup/" in mail.outbox[0].body
    # still below: nothing new
    assert send_alerts(utc(2026, 11, 15, 5)).splitlines() == [
        "Alerts: 0 raised, 0 emails sent, 0 not sent, 0 failed (1 accounts)"]
    # back above: cleared, no email
    topup_record(account=team, amount=Decimal("40.00"), reference="t2", at=utc(2026, 11, 15, 5))
    send_alerts(utc(2026, 11, 15, 6))
    first = Alert.objects.get()
    assert (first.state, first.cleared_at, first.amount, first.threshold) == (
        "cleared", utc(2026, 11, 15, 6), Decimal("30.00"), Decimal("50.00"))
    # below again (a higher threshold): a second crossing, a second email each
    assert save_settings(owner, funds_threshold="100.00").status_code == 302
    assert "sent acme funds_low (crossing 2) to owner@acme.example" in send_alerts(utc(2026, 11, 15, 7))
    assert len(mail.outbox) == 4
    assert list(Alert.objects.order_by("crossing").values_list("crossing", "state", "amount")) == [
        (1, "cleared", Decimal("30.00")), (2, "active", Decimal("70.00"))]


def test_the_viewer_and_an_opted_out_accountant_get_no_email(team):
    topup_record(account=team, amount=Decimal("10.00"), reference="t1", at=utc(2026, 11, 1))
    AlertSettings.objects.create(account=team, funds_low_on=True, funds_threshold=Decimal("50.00"))
    books = signed_in("books@acme.example")
    assert books.post("/billing/alerts/", {"receive": "0"}).status_code == 302
    assert AlertOptOut.objects.filter(user__email="books@acme.example").exists()
    assert "You have opted out" in books.get("/billing/alerts/").content.decode()
    assert "sent acme funds_low (crossing 1) to owner@acme.example" in send_alerts(NOV_15)
    assert [m.to for m in mail.outbox] == [["owner@acme.example"]]
    assert books.post("/billing/alerts/", {"receive": "1"}).status_code == 302
    assert not AlertOptOut.objects.exists()
    assert books.post("/billing/alerts/", {"receive": "maybe"}).status_code == 302
    assert not AlertOptOut.objects.exists()


def test_an_opt_out_after_the_alert_was_raised_stops_its_email(team):
    topup_record(account=team, amount=Decimal("10.00"), reference="t1", at=utc(2026, 11, 1))
    AlertSettings.objects.create(account=team, funds_low_on=True, funds_threshold=Decimal("50.00"))
    assert len(alerts_evaluate(account=team, now=NOV_15)) == 1
    signed_in("owner@acme.example").post("/billing/alerts/", {"receive": "0"})
    assert "to books@acme.example" in send_alerts(NOV_15)
    assert [m.to for m in mail.outbox] == [["books@acme.example"]]
    assert AlertEmail.objects.get(email="owner@acme.example").last_error == "not sent: the recipient opted out"


# --- budget: month to date and forecast ------------------------------------------

def test_month_to_date_above_the_budget(team):
    add_price("data_masking", "sg", "0.002000")
    add_usage(team, "sg", "data_masking", "2026-11-03", 1500)  # 3.00 USD so far
    owner = signed_in("owner@acme.example")
    assert save_settings(owner, funds_low_on=None, budget_on="on", budget_amount="2.50").status_code == 302
    assert "sent acme budget 2026-11 (crossing 1)" in send_alerts(NOV_15)
    alert = Alert.objects.get()
    assert (alert.kind, alert.subject, alert.amount, alert.threshold) == (
        "budget", "2026-11", Decimal("3.00"), Decimal("2.50"))
    assert "The month-to-date amount of November 2026 is 3.00 USD, above the budget of 2.50 USD." in \
        mail.outbox[0].body
    # a new month starts uncrossed: November's alert clears
    send_alerts(utc(2026, 12, 2, 4))
    assert Alert.objects.get().state == "cleared"


def test_month_end_forecast_above_the_budget(team):
    add_price("data_masking", "sg", "0.002000")
    add_usage(team, "sg", "data_masking", "2026-11-03", 1500)  # 3.00 by the 15th: 6.00 over 30 days
    owner = signed_in("owner@acme.example")
    save_settings(owner, funds_low_on=None, budget_on="on", budget_amount="5.00", budget_basis="month_to_date")
    assert "0 raised" in send_alerts(NOV_15)
    save_settings(owner, funds_low_on=None, budget_on="on", budget_amount="5.00", budget_basis="forecast")
    send_alerts(NOV_15)
    alert = Alert.objects.get()
    assert (alert.amount, alert.detail["month_to_date"], alert.detail["basis"]) == (
        Decimal("6.00"), "3.00", "forecast")
    assert "November 2026 is forecast to end at 6.00 USD (month to date 3.00 USD)" in mail.outbox[0].body


# --- Overdrawn period, after settlement -------------------------------------------

def test_a_period_settled_overdrawn_alerts_with_the_amount_and_a_repay_link(acme, django_capture_on_commit_callbacks):
    from aurora_billing.tasks import settlement_settle_batch
    from tests.support import worked_example_prices, worked_example_seed

    worked_example_prices()
    worked_example_seed(acme)
    with django_capture_on_commit_callbacks(execute=True):
        settlement_settle_batch(account_ids=[acme.pk], now="2026-11-01T15:00:00+08:00")
    kinds = dict(Alert.objects.values_list("kind", "subject"))
    assert kinds["overdrawn"] == "2026-10"
    alert = Alert.objects.get(kind="overdrawn")
    assert alert.amount == Decimal("1.72")
    message = next(m for m in mail.outbox if "Overdrawn" in m.subject)
    assert message.subject == "Aurora SendCloud alert: October 2026 settled Overdrawn (acme)"
    assert "October 2026 was settled with 1.72 USD Overdrawn" in message.body
    assert "Repay: http://127.0.0.1:8000/billing/repay/" in message.body
    html = message.alternatives[0][0]
    assert 'href="http://127.0.0.1:8000/billing/repay/"' in html


def test_repaying_clears_the_overdrawn_alert(owner, settings, acme):
    settings.PAYMENTS_SANDBOX = True
    send_alerts(utc(2026, 11, 2))
    assert Alert.objects.get(kind="overdrawn").is_active
    from tests.support.payments import breakdown_token
    token = breakdown_token(owner.get("/billing/repay/").content.decode())
    checkout = owner.post("/billing/repay/", {"breakdown": token, "method": "sandbox"})["Location"]
    assert owner.post(checkout, {"action": "approve"}).status_code == 302
    send_alerts(utc(2026, 11, 2, 1))
    assert Alert.objects.get(kind="overdrawn").state == "cleared"


# --- packs -----------------------------------------------------------------------

def test_pack_running_low_and_expiring(acme):
    overdrawn(acme)  # pack B (50,000 emails, sg) holds nothing after October
    add_pack(acme, "sg", "C", 1000, "2026-11-01", "2026-11-21")  # last valid day Nov 20
    send_alerts(NOV_15)
    got = sorted((a.kind, a.detail["reference"]) for a in Alert.objects.filter(kind__startswith="pack"))
    assert got == [("pack_expiring", "C"), ("pack_low", "B")]
    bodies = {m.subject: m.body for m in mail.outbox}
    assert "Email pack B (sg) holds 0 of 50,000 emails (0% left), below 20%" in \
        bodies["Aurora SendCloud alert: Email pack B running low (acme)"]
    assert ("Email pack C (sg) is valid until 2026-11-20 (UTC+8), 6 days from today, and still holds 1,000 "
            "emails.") in bodies["Aurora SendCloud alert: Email pack C expiring (acme)"]


# --- wire transfer awaited ---------------------------------------------------------

def test_a_wire_transfer_awaited_for_more_than_the_days(acme):
    payment = Payment.objects.create(account=acme, purpose="repayment", method="wire", amount=Decimal("1.72"),
                                     currency="USD", idempotency_key="k1", created_at=utc(2026, 11, 9))
    assert "0 raised" in send_alerts(utc(2026, 11, 13))  # 4 days
    assert "sent acme wire_waiting payment:" in send_alerts(NOV_15)  # 6 days
    assert f"The repayment {payment.reference} of 1.72 USD by wire transfer was started on 2026-11-09 08:00 " \
           f"UTC+8 and its money has not arrived after 5 days." in mail.outbox[0].body
    assert f"/billing/payments/{payment.public_id}/" in mail.outbox[0].body
    Payment.objects.filter(pk=payment.pk).update(status="succeeded")
    send_alerts(utc(2026, 11, 16))
    assert Alert.objects.get().state == "cleared"


# --- emails: retried with backoff, never twice ----------------------------------------

def test_a_failing_transport_is_retried_and_sends_once(acme, settings, monkeypatch,
                                                       django_capture_on_commit_callbacks):
    from aurora_billing.celery import app
    from payments.tasks import alert_email, alerts_evaluate_batch

    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    settings.EMAIL_BACKEND = f"{__name__}.FlakySMTPBackend"
    FlakySMTPBackend.attempts, FlakySMTPBackend.failures = 0, 2
    assert (alert_email.retry_backoff, alert_email.max_retries) == (60, 10)
    topup_record(account=acme, amount=Decimal("1.00"), reference="t1", at=utc(2026, 11, 1))
    AlertSettings.objects.create(account=acme, funds_low_on=True, funds_threshold=Decimal("50.00"))
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate_batch(account_ids=[acme.pk], now=NOV_15.isoformat()) == 1
    row = AlertEmail.objects.get()
    assert FlakySMTPBackend.attempts == 3 and len(mail.outbox) == 1
    assert (row.attempts, row.last_error) == (3, "")
    assert row.sent_at is not None
    # a retried or duplicated task finds it sent
    assert alert_email(row.pk) is False
    assert len(mail.outbox) == 1


def test_the_command_reports_a_failed_email_and_the_next_run_sends_it(acme, settings):
    settings.EMAIL_BACKEND = f"{__name__}.FlakySMTPBackend"
    FlakySMTPBackend.attempts, FlakySMTPBackend.failures = 0, 1
    AlertSettings.objects.create(account=acme, funds_low_on=True, funds_threshold=Decimal("50.00"))
    err = io.StringIO()
    with time_machine.travel(NOV_15, tick=False), pytest.raises(CommandError, match="1 alert email"):
        call_command("send_alerts", stdout=io.StringIO(), stderr=err)
    assert "error: acme funds_low to owner@acme.example: Connection unexpectedly closed" in err.getvalue()
    assert "SMTPServerDisconnected" in AlertEmail.objects.get().last_error
    assert send_alerts(utc(2026, 11, 15, 5)).splitlines() == [
        "sent acme funds_low (crossing 1) to owner@acme.example",
        "Alerts: 0 raised, 1 emails sent, 0 not sent, 0 failed (1 accounts)"]


def test_beat_requeues_unsent_emails(acme, django_capture_on_commit_callbacks):
    from payments.tasks import alerts_evaluate_due

    AlertSettings.objects.create(account=acme, funds_low_on=True, funds_threshold=Decimal("50.00"))
    alerts_evaluate(account=acme, now=NOV_15)  # raised, its email task lost
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate_due(now=NOV_15.isoformat()) == {"batches": 1, "emails_requeued": 1}
    assert len(mail.outbox) == 1


def test_an_alert_cleared_before_its_email_is_not_sent(acme):
    AlertSettings.objects.create(account=acme, funds_low_on=True, funds_threshold=Decimal("50.00"))
    alerts_evaluate(account=acme, now=NOV_15)
    topup_record(account=acme, amount=Decimal("80.00"), reference="t1", at=NOV_15)
    assert "0 emails sent" in send_alerts(utc(2026, 11, 15, 5))
    assert mail.outbox == []


def test_the_email_reads_in_chinese(acme, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    AlertSettings.objects.create(account=acme, funds_low_on=True, funds_threshold=Decimal("50.00"))
    alert = alerts_evaluate(account=acme, now=NOV_15)[0]
    message = alert_email_message(row=alert.emails.get())
    assert message.subject == "Aurora SendCloud 提醒：余额低于 50.00 USD（acme）"
    assert "余额为 0.00 USD，低于告警阈值 50.00 USD" in message.body


def test_a_sent_email_reads_well(acme, capsys):
    """Prints one email (pytest -s) to read it."""
    AlertSettings.objects.create(account=acme, funds_low_on=True, funds_threshold=Decimal("50.00"))
    send_alerts(NOV_15)
    message = mail.outbox[0]
    print(f"Subject: {message.subject}\nTo: {', '.join(message.to)}\n\n{message.body}")
    assert message.body.startswith("Hello,\n\nFunds below 50.00 USD · Acme Ltd (acme)\n\n")


# --- the pages -----------------------------------------------------------------

def test_the_summary_strip_shows_active_alerts(owner, acme):
    assert 'id="alert-strip"' not in owner.get("/billing/").content.decode()
    send_alerts(utc(2026, 11, 2))
    html = owner.get("/billing/").content.decode()
    assert 'id="alert-strip"' in html
    assert "October 2026 settled Overdrawn" in html and 'href="/billing/repay/"' in html


def test_the_alerts_page_shows_settings_and_history(owner, acme):
    send_alerts(utc(2026, 11, 2))
    response = owner.get("/billing/alerts/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="alert-settings"' in html and 'id="alert-history"' in html
    assert "October 2026 settled Overdrawn" in html and "owner@acme.example ✓" in html


def test_the_alert_history_is_paged_and_counts_every_active_alert(owner, acme):
    """60 past crossings of the funds alert and one active: 50 a page, the
    oldest on page 2; the active count is over all alerts, not the page."""
    for n in range(1, 61):
        Alert.objects.create(account=acme, kind="funds_low", crossing=n, state="cleared", currency="USD",
                             raised_at=utc(2026, 1, 1) + (utc(2026, 1, 2) - utc(2026, 1, 1)) * n,
                             cleared_at=utc(2026, 9, 1), amount=Decimal("10.00"), threshold=Decimal("50.00"))
    Alert.objects.create(account=acme, kind="funds_low", crossing=61, currency="USD", raised_at=utc(2026, 11, 1),
                         amount=Decimal("10.00"), threshold=Decimal("50.00"))
    first = owner.get("/billing/alerts/").content.decode()
    assert first.count('class="alert-row') == 50 and "Page 1 of 2" in first and "1 active" in first
    second = owner.get("/billing/alerts/?page=2").content.decode()
    assert second.count('class="alert-row') == 11 and "(crossing 2)" in second and "(crossing 1)" not in second
    assert "1 active" in second
    assert owner.get("/billing/alerts/?page=x").status_code == 200  # a bad page number shows the first


def test_the_payments_list_is_paged(owner, acme):
    for i in range(55):
        Payment.objects.create(account=acme, purpose="topup", method="sandbox", amount=Decimal("5.00"),
                               currency="USD", status="succeeded", reference=f"PAY-{i:04d}",
                               idempotency_key=f"key-{i}")
    first = owner.get("/billing/payments/").content.decode()
    assert first.count("<code>PAY-") == 50 and "Page 1 of 2" in first
    assert owner.get("/billing/payments/?page=2").content.decode().count("<code>PAY-") == 5


def test_only_the_owner_edits_the_settings(team):
    for email in ("books@acme.example", "viewer@acme.example"):
        client = signed_in(email)
        page = client.get("/billing/alerts/")
        assert page.status_code == 200 and 'id="read-only-note"' in page.content.decode()
        assert save_settings(client).status_code == 403
    assert not AlertSettings.objects.exists()
    owner = signed_in("owner@acme.example")
    assert save_settings(owner).status_code == 302
    assert AlertSettings.objects.get().funds_threshold == Decimal("50.00")
    assert AuditEvent.objects.filter(action="alerts.settings_changed").count() == 1


def test_the_viewer_receives_nothing_and_has_no_opt_out(team):
    html = signed_in("viewer@acme.example").get("/billing/alerts/").content.decode()
    assert 'id="alert-subscription"' not in html


@pytest.mark.parametrize(("changes", "message"), [
    ({"funds_threshold": "1e3"}, "Enter an amount such as 50.00"),
    ({"funds_threshold": "-5"}, "Enter an amount such as 50.00"),
    ({"funds_threshold": "12.345"}, "more than 2 decimal places"),
    ({"funds_threshold": ""}, "Enter the threshold to alert below."),
    ({"budget_on": "on", "budget_amount": ""}, "Enter the budget to alert above."),
    ({"budget_on": "on", "budget_amount": "0"}, "The budget must be greater than 0."),
    ({"budget_amount": "99999999999999"}, "Enter an amount below 1,000,000,000,000."),
    ({"pack_low_percent": "0"}, "greater than or equal to 1"),
    ({"pack_expiring_days": "400"}, "less than or equal to 365"),
    ({"wire_waiting_days": "x"}, "Enter a whole number."),
    ({"budget_basis": "weekly"}, "Select a valid choice."),
])
def test_bad_settings_are_refused_and_nothing_is_stored(acme, changes, message):
    response = save_settings(signed_in("owner@acme.example"), **changes)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not AlertSettings.objects.exists()


def test_the_alerts_page_needs_a_sign_in(acme):
    response = Client().get("/billing/alerts/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")

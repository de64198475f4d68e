"""The whole repay flow in a real browser with the sandbox provider:
console → repay page → checkout → receipt; a decline and a retry; an
overdraft that appears while the page is open is not charged."""
from __future__ import annotations

from decimal import Decimal

import pytest

from payments.models import Payment
from tests.support.payments import later_overdraft, line_states, overdrawn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def providers_on(settings):
    settings.PAYMENTS_SANDBOX = True
    settings.WIRE_BANK_DETAILS = ("Beneficiary: Aurora SendCloud Pte. Ltd.\nBank: Example Bank Singapore\n"
                                  "SWIFT/BIC: EXSGSGSG")


def pay_with_sandbox(page):
    page.check("input[name=method][value=sandbox]")
    page.click("#pay-button")
    page.wait_for_url("**/pay/sandbox/**")


def test_repay_in_the_browser(live_server, page, sign_in, screenshot, acme):
    overdrawn(acme)
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/?period=2026-10")
    assert "Overdrawn" in page.inner_text("main")
    page.click("nav >> text=Repay")
    page.wait_for_url("**/billing/repay/")
    assert page.inner_text("#total-due") == "1.72"
    rows = page.locator("#breakdown tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).inner_text().split("\t") == ["2026-10", "Email", "SG sg", "0.40"]
    assert rows.nth(1).inner_text().split("\t") == ["2026-10", "Data Flow", "SG sg", "1.32"]
    screenshot(page, "repay-page")

    pay_with_sandbox(page)
    assert page.inner_text("#checkout-amount") == "1.72 USD"
    screenshot(page, "repay-sandbox-checkout")
    page.click("#sandbox-approve")
    page.wait_for_url("**/billing/payments/**")
    assert page.inner_text("#payment-status") == "Paid"
    assert "Thank you: 1.72 USD received." in page.inner_text("#payment-outcome")
    assert page.locator("#payment-lines .status-Paid").count() == 2
    screenshot(page, "repay-receipt")

    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]
    page.goto(f"{live_server.url}/billing/?period=2026-10")
    assert "Overdrawn" not in page.inner_text("main")
    screenshot(page, "repay-console-after")
    page.goto(f"{live_server.url}/billing/repay/")
    assert "Nothing to repay" in page.inner_text("#nothing-due")


def test_declined_then_retried_in_the_browser(live_server, page, sign_in, screenshot, acme):
    overdrawn(acme)
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/repay/")
    pay_with_sandbox(page)
    page.click("#sandbox-decline")
    page.wait_for_url("**/billing/payments/**")
    assert page.inner_text("#payment-status") == "Declined"
    assert "Nothing was charged; the lines are still Overdrawn." in page.inner_text("#payment-outcome")
    screenshot(page, "repay-declined")
    assert [s[-1] for s in line_states(acme)] == ["Overdrawn", "Overdrawn"]
    page.click("#try-again")
    page.wait_for_url("**/billing/repay/")
    assert page.inner_text("#total-due") == "1.72"
    pay_with_sandbox(page)
    page.click("#sandbox-approve")
    page.wait_for_url("**/billing/payments/**")
    assert page.inner_text("#payment-status") == "Paid"
    assert sorted(Payment.objects.values_list("status", flat=True)) == ["declined", "succeeded"]


def test_overdraft_appearing_while_the_page_is_open_is_not_charged(live_server, page, sign_in, screenshot, acme):
    overdrawn(acme)
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/repay/")
    assert page.inner_text("#total-due") == "1.72"
    later_overdraft(acme)  # 2026-11 settles with a 3.00 overdrawn line while the page is open
    pay_with_sandbox(page)
    assert page.inner_text("#checkout-amount") == "1.72 USD"
    page.click("#sandbox-approve")
    page.wait_for_url("**/billing/payments/**")
    assert page.inner_text("#payment-amount") == "1.72 USD"
    assert line_states(acme)[-1] == ("2026-11", "data_masking", "sg", Decimal("0.00"), Decimal("3.00"), "Overdrawn")
    page.goto(f"{live_server.url}/billing/repay/")
    assert page.inner_text("#total-due") == "3.00"
    screenshot(page, "repay-later-overdraft")


def test_wire_transfer_instructions_in_the_browser(live_server, page, sign_in, screenshot, acme):
    overdrawn(acme)
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/repay/")
    page.check("input[name=method][value=wire]")
    page.click("#pay-button")
    page.wait_for_url("**/billing/payments/**")
    payment = Payment.objects.get()
    assert page.inner_text("#wire-reference") == payment.reference
    assert "SWIFT/BIC: EXSGSGSG" in page.inner_text("#wire-instructions")
    screenshot(page, "repay-wire-instructions")


@pytest.fixture
def emulators(settings, live_server):
    settings.PAYMENT_EMULATORS = True
    settings.PAYPAL_API_BASE = f"{live_server.url}/emulators/paypal"


def test_repay_with_alipay_through_the_emulator(live_server, page, sign_in, screenshot, acme, emulators):
    overdrawn(acme)
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/repay/")
    assert page.locator("input[name=method]").evaluate_all("els => els.map(e => e.value)") == [
        "alipay", "paypal", "wire", "sandbox"]
    page.check("input[name=method][value=alipay]")
    page.click("#pay-button")
    page.wait_for_url("**/emulators/alipay/gateway.do?**")
    assert page.inner_text("#checkout-amount") == "1.72 USD"
    screenshot(page, "repay-alipay-emulator-checkout")
    page.click("#emulator-pay")
    page.wait_for_url("**/billing/payments/**")
    assert page.inner_text("#payment-status") == "Paid"
    assert "Thank you: 1.72 USD received." in page.inner_text("#payment-outcome")
    screenshot(page, "repay-alipay-receipt")
    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]


def test_repay_with_paypal_through_the_emulator(live_server, page, sign_in, screenshot, acme, emulators):
    overdrawn(acme)
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/repay/")
    page.check("input[name=method][value=paypal]")
    page.click("#pay-button")
    page.wait_for_url("**/emulators/paypal/checkoutnow?**")
    assert page.inner_text("#checkout-amount") == "1.72 USD"
    screenshot(page, "repay-paypal-emulator-checkout")
    page.click("#emulator-pay")
    page.wait_for_url("**/billing/payments/**")
    assert page.inner_text("#payment-status") == "Paid"
    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]


def test_summary_with_a_pending_wire_transfer(live_server, page, sign_in, screenshot, acme):
    overdrawn(acme)
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/repay/")
    page.check("input[name=method][value=wire]")
    page.click("#pay-button")
    page.wait_for_url("**/billing/payments/**")
    page.goto(f"{live_server.url}/billing/?period=2026-10")
    assert "is awaiting the transfer" in page.inner_text("#pending-repayment")
    assert page.locator("a.btn-danger").count() == 0
    screenshot(page, "summary-pending-wire")
    page.click("#pending-repayment a")
    page.wait_for_url("**/billing/payments/**")
    assert page.inner_text("#wire-reference") == Payment.objects.get().reference

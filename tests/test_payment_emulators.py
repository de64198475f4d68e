"""Alipay and PayPal end to end against the local emulators
(``payments/emulators``), over real HTTP to the live server: the console
starts the payment, the payer decides on the emulator's checkout page, the
emulator sends its signed notification (Alipay) or webhook (PayPal) to the
console, and the unchanged adapters verify them. Also: tampered
notifications are refused, production settings point at the real gateways,
and ``check --deploy`` warns about emulators with DEBUG off."""
from __future__ import annotations

import http.cookiejar
import json
import re
import secrets
import urllib.error
import urllib.request
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import pytest
from django.utils import timezone

from payments.emulators import alipay as alipay_emulator
from payments.emulators import delivery
from payments.emulators import paypal as paypal_emulator
from payments.models import LedgerEntry, Payment, PaymentEvent
from tests.support import PASSWORD
from tests.support.payments import line_states, overdrawn

from .test_settings import run_manage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def emulators_on(settings, live_server):
    """The emulators as the demo and CI run them; PayPal's API base is the
    live server's (the adapter calls it server-side)."""
    settings.PAYMENT_EMULATORS = True
    settings.PAYMENTS_SANDBOX = False
    settings.WIRE_BANK_DETAILS = "Beneficiary: Aurora SendCloud Pte. Ltd."
    settings.PAYPAL_API_BASE = f"{live_server.url}/emulators/paypal"


class Forms(HTMLParser):
    """The forms of a page: action, method, and the inputs and buttons by name."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {},
                               "buttons": {}})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            kind = "buttons" if tag == "button" or a.get("type") == "submit" else "fields"
            self.forms[-1][kind].setdefault(a["name"], []).append(a.get("value", ""))


def forms_of(html: str) -> list[dict]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


class Browser:
    """A cookie-keeping HTTP client that follows redirects (urllib)."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.url = ""

    def open(self, url: str, data: dict | None = None) -> tuple[int, str]:
        body = urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(urljoin(self.base, url), data=body, timeout=30) as response:
                self.url = response.geturl()
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            self.url = exc.geturl()
            return exc.code, exc.read().decode()

    def submit(self, html: str, *, button: tuple[str, str] | None = None, action_contains: str = "",
               **values) -> tuple[int, str]:
        form = next(f for f in forms_of(html) if action_contains in f["action"])
        data = {name: vals[0] for name, vals in form["fields"].items()}
        data.update(values)
        if button:
            data[button[0]] = button[1]
        return self.open(urljoin(self.url, form["action"] or self.url), data)

    def sign_in(self, email: str) -> None:
        _, html = self.open("/accounts/login/")
        status, _ = self.submit(html, action_contains="/accounts/login/", username=email, password=PASSWORD)
        assert status == 200 and urlsplit(self.url).path == "/billing/"


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the live server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def event_kinds(payment) -> list[str]:
    """The payment's audit trail, without the receipt email."""
    events = PaymentEvent.objects.filter(payment=payment).exclude(kind="receipt_sent").order_by("id")
    return list(events.values_list("kind", flat=True))


def start_repay(live_server, acme, method: str) -> tuple[Browser, str]:
    """Signed in as acme's owner, Confirm and pay with ``method``: the emulator's checkout page."""
    overdrawn(acme)
    browser = Browser(live_server.url)
    browser.sign_in("owner@acme.example")
    _, html = browser.open("/billing/repay/")
    assert f'value="{method}"' in html
    status, page = browser.submit(html, action_contains="/billing/repay/", method=method)
    assert status == 200, page
    return browser, page


# --- Alipay ------------------------------------------------------------------


def test_alipay_repayment_end_to_end_through_the_emulator(live_server, acme):
    browser, checkout = start_repay(live_server, acme, "alipay")
    assert urlsplit(browser.url).path == "/emulators/alipay/gateway.do"
    assert 'id="checkout-amount">1.72 USD<' in checkout and "Alipay emulator" in checkout
    payment = Payment.objects.get()
    assert [s[-1] for s in line_states(acme)] == ["Overdrawn", "Overdrawn"]

    status, receipt = browser.submit(checkout, button=("action", "pay"))
    assert status == 200
    assert urlsplit(browser.url).path == f"/billing/payments/{payment.public_id}/"
    assert 'id="payment-status">Paid<' in receipt
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert payment.provider_transaction_id == alipay_emulator.trade_no_for(payment.public_id.hex)
    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]
    assert LedgerEntry.objects.filter(kind="repayment").count() == 1
    # the signed notification did it (the return proves nothing about money)
    assert event_kinds(payment) == [
        "created", "started", "succeeded"]


def test_alipay_cancel_at_the_emulator_closes_the_trade(live_server, acme):
    browser, checkout = start_repay(live_server, acme, "alipay")
    status, page = browser.submit(checkout, button=("action", "cancel"))
    payment = Payment.objects.get()
    assert status == 200 and urlsplit(browser.url).path == f"/billing/payments/{payment.public_id}/"
    payment.refresh_from_db()
    assert payment.status == "cancelled"
    assert [s[-1] for s in line_states(acme)] == ["Overdrawn", "Overdrawn"]


def test_alipay_gateway_refuses_a_request_altered_after_signing(live_server, acme):
    browser, _ = start_repay(live_server, acme, "alipay")
    params = dict(parse_qsl(urlsplit(Payment.objects.get().checkout_url).query))
    biz = json.loads(params["biz_content"]) | {"total_amount": "0.01"}
    params["biz_content"] = json.dumps(biz, separators=(",", ":"))
    status, page = browser.open("/emulators/alipay/gateway.do?" + urlencode(params))
    assert status == 400 and "invalid-signature" in page


def test_alipay_notification_with_a_tampered_signature_is_refused(live_server, acme):
    start_repay(live_server, acme, "alipay")
    payment = Payment.objects.get()
    request_params = dict(parse_qsl(urlsplit(payment.checkout_url).query))
    order = alipay_emulator.request_verify(request_params)
    signed = alipay_emulator.notification_params(order, trade_status="TRADE_SUCCESS", now=timezone.now())
    notify_url = f"{live_server.url}/payments/callback/alipay/"
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    tampered = signed | {"total_amount": "0.01"}
    assert post(notify_url, urlencode(tampered).encode(), form) == (400, "rejected")
    forged = signed | {"sign": signed["sign"][:-8] + "AAAAAAA="}
    assert post(notify_url, urlencode(forged).encode(), form) == (400, "rejected")
    assert list(PaymentEvent.objects.filter(kind="rejected").values_list("message", flat=True)) == [
        "Alipay signature does not verify"] * 2
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert not LedgerEntry.objects.filter(kind="repayment").exists()

    assert post(notify_url, urlencode(signed).encode(), form) == (200, "success")
    payment.refresh_from_db()
    assert payment.status == "succeeded"


# --- PayPal ------------------------------------------------------------------


def test_paypal_repayment_end_to_end_through_the_emulator(live_server, acme):
    browser, approve = start_repay(live_server, acme, "paypal")
    payment = Payment.objects.get()
    assert urlsplit(browser.url).path == "/emulators/paypal/checkoutnow"
    assert dict(parse_qsl(urlsplit(browser.url).query)) == {"token": payment.provider_order_id}
    assert 'id="checkout-amount">1.72 USD<' in approve and "PayPal emulator" in approve

    status, receipt = browser.submit(approve, button=("action", "pay"))
    assert status == 200
    assert urlsplit(browser.url).path == f"/billing/payments/{payment.public_id}/"
    assert 'id="payment-status">Paid<' in receipt
    payment.refresh_from_db()
    assert payment.status == "succeeded" and payment.provider_transaction_id
    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]
    assert LedgerEntry.objects.filter(kind="repayment").count() == 1
    # the webhook (sent as the order was captured) paid it; the capture's answer was a replay
    assert event_kinds(payment) == [
        "created", "started", "succeeded", "replay"]


def test_paypal_cancel_at_the_emulator(live_server, acme):
    browser, approve = start_repay(live_server, acme, "paypal")
    status, _ = browser.submit(approve, button=("action", "cancel"))
    payment = Payment.objects.get()
    assert status == 200 and urlsplit(browser.url).path == f"/billing/payments/{payment.public_id}/"
    payment.refresh_from_db()
    assert payment.status == "cancelled"


def test_paypal_emulator_api_refuses_bad_credentials_and_unapproved_capture(live_server, settings):
    base = settings.PAYPAL_API_BASE
    assert post(f"{base}/v1/oauth2/token", b"grant_type=client_credentials",
                {"Authorization": "Basic d3Jvbmc6d3Jvbmc="})[0] == 401
    assert post(f"{base}/v2/checkout/orders", b"{}", {"Authorization": "Bearer forged",
                                                       "Content-Type": "application/json"})[0] == 401
    api = paypal_emulator_api(settings)
    order = api.order_create(body={"intent": "CAPTURE", "purchase_units": [
        {"custom_id": "x", "amount": {"currency_code": "USD", "value": "2.00"}}]}, request_id="r1")
    assert order["status"] == "PAYER_ACTION_REQUIRED"
    assert api.order_create(body={"intent": "CAPTURE", "purchase_units": [
        {"custom_id": "x", "amount": {"currency_code": "USD", "value": "2.00"}}]}, request_id="r1")["id"] == order["id"]
    from payments.providers.base import ProviderUnavailable

    with pytest.raises(ProviderUnavailable, match="ORDER_NOT_APPROVED"):
        api.order_capture(order_id=order["id"], request_id="c1")


def paypal_emulator_api(settings):
    from payments.providers.paypal import PayPalAPI

    return PayPalAPI(base_url=settings.PAYPAL_API_BASE, client_id=settings.PAYPAL_CLIENT_ID,
                     secret=settings.PAYPAL_CLIENT_SECRET)


def test_paypal_webhook_with_a_tampered_body_or_signature_is_refused(live_server, acme, settings):
    start_repay(live_server, acme, "paypal")
    payment = Payment.objects.get()
    capture = {"id": "3C679366HH908993F", "status": "COMPLETED", "custom_id": str(payment.public_id),
               "amount": {"currency_code": "USD", "value": "1.72"}, "final_capture": True}
    event = paypal_emulator.webhook_event(event_type="PAYMENT.CAPTURE.COMPLETED", resource=capture,
                                          now=timezone.now())
    body, headers = paypal_emulator.webhook_signed(event, api_base=settings.PAYPAL_API_BASE)
    url = f"{live_server.url}/payments/callback/paypal/"

    assert post(url, body.replace(b'"1.72"', b'"0.01"'), headers) == (400, "rejected")
    other_id = headers | {"PAYPAL-TRANSMISSION-ID": secrets.token_hex(8)}
    assert post(url, body, other_id) == (400, "rejected")
    foreign_cert = headers | {"PAYPAL-CERT-URL": "https://evil.example/cert.pem"}
    assert post(url, body, foreign_cert) == (400, "rejected")
    assert [m for m in PaymentEvent.objects.filter(kind="rejected").order_by("id").values_list("message", flat=True)
            ] == ["PayPal webhook signature does not verify"] * 2 + [
        "certificate URL 'https://evil.example/cert.pem' is not PayPal's"]
    payment.refresh_from_db()
    assert payment.status == "pending"

    assert post(url, body, headers)[0] == 200
    payment.refresh_from_db()
    assert (payment.status, payment.provider_transaction_id) == ("succeeded", "3C679366HH908993F")


# --- switching them on and off -------------------------------------------------


def test_emulator_pages_are_not_found_when_the_emulators_are_off(live_server, settings):
    settings.PAYMENT_EMULATORS = False
    browser = Browser(live_server.url)
    assert browser.open("/emulators/alipay/gateway.do")[0] == 404
    assert post(f"{live_server.url}/emulators/paypal/v1/oauth2/token", b"", {})[0] == 404


def test_production_settings_point_at_the_real_gateways(tmp_path):
    show = ("from django.conf import settings as s; from payments.providers import providers_offered as p;"
            "print(s.ALIPAY_GATEWAY, s.PAYPAL_API_BASE, [x.code for x in p(currency='USD')])")
    production = run_manage(tmp_path, "shell", "-c", show, DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50),
                            ALIPAY_APP_ID="2021000000000001", ALIPAY_PRIVATE_KEY="k", ALIPAY_PUBLIC_KEY="k")
    assert production.returncode == 0, production.stderr
    assert production.stdout.strip().splitlines()[-1] == (
        "https://openapi.alipay.com/gateway.do https://api-m.paypal.com ['alipay']")
    demo = run_manage(tmp_path, "shell", "-c", show, DEBUG="1", PAYMENT_EMULATORS="1")
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.strip().splitlines()[-1] == (
        "/emulators/alipay/gateway.do http://127.0.0.1:8000/emulators/paypal "
        "['alipay', 'paypal', 'wire', 'sandbox']")


def test_check_deploy_warns_about_emulators_with_debug_off(tmp_path):
    production = {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "billing.example.com"}
    result = run_manage(tmp_path, "check", "--deploy", PAYMENT_EMULATORS="1", **production)
    assert "payments.W001" in result.stdout + result.stderr
    assert "approve payments without money" in result.stdout + result.stderr
    clean = run_manage(tmp_path, "check", "--deploy", **production)
    assert "payments.W001" not in clean.stdout + clean.stderr


def test_emulator_outbound_calls_stay_on_this_machine():
    assert delivery.deliverable("http://127.0.0.1:8000/payments/callback/alipay/", request_host="x")
    assert delivery.deliverable("http://billing.local/payments/callback/alipay/",
                                       request_host="billing.local")
    assert not delivery.deliverable("http://10.0.0.5/payments/callback/alipay/", request_host="x")
    assert not delivery.deliverable("file:///etc/passwd", request_host="x")
    assert re.fullmatch(r"\d{28}", alipay_emulator.trade_no_for("ab" * 16))

"""PayPal (Orders v2 and webhooks).

Configured from the environment: ``PAYPAL_CLIENT_ID``,
``PAYPAL_CLIENT_SECRET``, ``PAYPAL_WEBHOOK_ID``, ``PAYPAL_API_BASE``
(``https://api-m.sandbox.paypal.com`` for PayPal's own sandbox). Offered
only when the first three are set.

- **Start**: an order is created (``POST /v2/checkout/orders``, intent
  CAPTURE, ``custom_id`` = the payment's public id, ``PayPal-Request-Id`` =
  the payment's public id so a retry creates no second order) and the payer
  is sent to its approval link.
- **Return**: PayPal sends the payer back with ``?token=<order id>``; the
  order is captured (``POST /v2/checkout/orders/<id>/capture``, idempotent
  by request id) and the capture's status, amount and currency confirm the
  payment.
- **Webhook** (``PAYMENT.CAPTURE.COMPLETED`` / ``DENIED`` / ``PENDING``):
  verified offline as PayPal documents it: the signed text is
  ``<transmission id>|<transmission time>|<webhook id>|<CRC32 of the raw
  body, decimal>``, the signature (``PAYPAL-TRANSMISSION-SIG``, base64) is
  SHA256withRSA, verified with the public key of the X.509 certificate at
  ``PAYPAL-CERT-URL``, which must be an https URL on a paypal.com host and
  valid now. Other verified events are acknowledged and ignored.
- **Emulator**: with ``PAYMENT_EMULATORS`` on (development, demo, tests),
  URLs under ``PAYPAL_API_BASE`` are also accepted over plain http and as
  the certificate URL (``payments/emulators/paypal.py``); nothing else of
  the protocol changes, and nothing at all when the setting is off.

``PayPalAPI`` is the only part that talks to the network; tests replace it
and ``cert_fetch``.
"""
from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
import zlib
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy

from .base import (
    CallbackRejected,
    Checkout,
    CheckoutUrls,
    Notification,
    PaymentProvider,
    ProviderUnavailable,
    rsa_sha256_verify,
)

log = logging.getLogger("aurora.payments")

CAPTURE_OUTCOMES = {"COMPLETED": "succeeded", "DECLINED": "declined", "FAILED": "declined",
                    "PENDING": "pending"}
WEBHOOK_OUTCOMES = {"PAYMENT.CAPTURE.COMPLETED": "succeeded", "PAYMENT.CAPTURE.DENIED": "declined",
                    "PAYMENT.CAPTURE.DECLINED": "declined", "PAYMENT.CAPTURE.PENDING": "pending"}
TIMEOUT_SECONDS = 20


class PayPalAPI:
    """PayPal's REST API over HTTPS with OAuth2 client credentials."""

    def __init__(self, *, base_url: str, client_id: str, secret: str):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.secret = secret

    def _open(self, method: str, url: str, *, data: bytes, headers: dict[str, str]) -> dict:
        if urlsplit(url).scheme != "https" and not emulated_url(url):
            raise ProviderUnavailable("PayPal API base must be an https URL")
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - https only
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - https only
                return json.loads(response.read().decode() or "{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise ProviderUnavailable(f"PayPal answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            raise ProviderUnavailable(f"PayPal cannot be reached: {exc}") from None

    def _token(self) -> str:
        credentials = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        answer = self._open("POST", f"{self.base_url}/v1/oauth2/token", data=b"grant_type=client_credentials",
                            headers={"Authorization": f"Basic {credentials}",
                                     "Content-Type": "application/x-www-form-urlencoded"})
        return answer["access_token"]

    def _call(self, method: str, path: str, body: dict | None, *, request_id: str) -> dict:
        return self._open(
            method, f"{self.base_url}{path}", data=json.dumps(body).encode() if body is not None else b"{}",
            headers={"Authorization": f"Bearer {self._token()}", "Content-Type": "application/json",
                     "PayPal-Request-Id": request_id, "Prefer": "return=representation"},
        )

    def order_create(self, *, body: dict, request_id: str) -> dict:
        return self._call("POST", "/v2/checkout/orders", body, request_id=request_id)

    def order_capture(self, *, order_id: str, request_id: str) -> dict:
        return self._call("POST", f"/v2/checkout/orders/{order_id}/capture", None, request_id=request_id)


def emulated_url(url: str) -> bool:
    """A URL of the local PayPal emulator: only while PAYMENT_EMULATORS is on."""
    base = settings.PAYPAL_API_BASE.rstrip("/") + "/"
    return bool(getattr(settings, "PAYMENT_EMULATORS", False)) and url.startswith(base)


def cert_url_allowed(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return (parts.scheme == "https" and (host == "paypal.com" or host.endswith(".paypal.com"))) or emulated_url(url)


@lru_cache(maxsize=16)
def cert_fetch(url: str) -> bytes:
    """The PEM certificate at ``url`` (cached per URL)."""
    if not cert_url_allowed(url):
        raise CallbackRejected(f"certificate URL {url!r} is not PayPal's")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - checked above
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise CallbackRejected(f"PayPal certificate cannot be fetched: {exc}") from None


def transmission_text(*, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> str:
    """The text PayPal signs for a webhook delivery."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}"


def capture_notification(capture: dict, *, payload: dict) -> Notification:
    """A Notification from a capture object (capture response or webhook resource)."""
    amount_obj = capture.get("amount") or {}
    try:
        amount = Decimal(str(amount_obj.get("value", "")))
    except InvalidOperation:
        raise CallbackRejected(f"capture amount {amount_obj.get('value')!r} is not a number") from None
    return Notification(
        payment_id=str(capture.get("custom_id", "")),
        outcome=CAPTURE_OUTCOMES.get(str(capture.get("status", "")), "pending"),
        amount=amount, currency=str(amount_obj.get("currency_code", "")),
        transaction_id=str(capture.get("id", "")), payload=payload,
    )


class PayPalProvider(PaymentProvider):
    code = "paypal"
    label = gettext_lazy("PayPal")
    description = gettext_lazy("Pay with PayPal or a card through PayPal: you are sent to PayPal and come back here.")

    def is_configured(self) -> bool:
        return all(getattr(settings, name, "") for name in ("PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET",
                                                          "PAYPAL_WEBHOOK_ID"))

    def api(self) -> PayPalAPI:
        return PayPalAPI(base_url=settings.PAYPAL_API_BASE, client_id=settings.PAYPAL_CLIENT_ID,
                         secret=settings.PAYPAL_CLIENT_SECRET)

    def order_body(self, *, payment, urls: CheckoutUrls) -> dict:
        return {
            "intent": "CAPTURE",
            "purchase_units": [{
                "reference_id": payment.reference,
                "custom_id": str(payment.public_id),
                "invoice_id": payment.reference,
                "description": f"Aurora SendCloud {payment.get_purpose_display()}",
                "amount": {"currency_code": payment.currency, "value": f"{payment.amount:.2f}"},
            }],
            "payment_source": {"paypal": {"experience_context": {
                "brand_name": "Aurora SendCloud", "user_action": "PAY_NOW", "shipping_preference": "NO_SHIPPING",
                "return_url": urls.return_url, "cancel_url": urls.cancel_url,
            }}},
        }

    def checkout_start(self, *, payment, urls: CheckoutUrls, now) -> Checkout:
        order = self.api().order_create(body=self.order_body(payment=payment, urls=urls),
                                        request_id=str(payment.public_id))
        link = next((ln.get("href") for ln in order.get("links", []) if ln.get("rel") in ("payer-action", "approve")),
                    "")
        if not order.get("id") or not link:
            raise ProviderUnavailable("PayPal created no order to approve")
        return Checkout(redirect_url=link, provider_order_id=order["id"])

    def order_capture(self, *, payment) -> Notification:
        """Capture the approved order of ``payment`` (after the payer's return)."""
        order = self.api().order_capture(order_id=payment.provider_order_id,
                                         request_id=f"capture-{payment.public_id}")
        units = order.get("purchase_units") or []
        captures = ((units[0].get("payments") or {}).get("captures") or []) if units else []
        if not captures:
            raise ProviderUnavailable(f"PayPal order {payment.provider_order_id} has no capture")
        capture = dict(captures[0])
        capture.setdefault("custom_id", str(payment.public_id))
        return capture_notification(capture, payload={"order": order})

    def callback_verify(self, *, request) -> Notification:
        headers = request.headers
        transmission_id = headers.get("Paypal-Transmission-Id", "")
        transmission_time = headers.get("Paypal-Transmission-Time", "")
        signature = headers.get("Paypal-Transmission-Sig", "")
        cert_url = headers.get("Paypal-Cert-Url", "")
        algo = headers.get("Paypal-Auth-Algo", "")
        if not all((transmission_id, transmission_time, signature, cert_url)):
            raise CallbackRejected("PayPal webhook lacks its transmission headers")
        if algo != "SHA256withRSA":
            raise CallbackRejected(f"unsupported PayPal auth algorithm {algo!r}")
        if not cert_url_allowed(cert_url):
            raise CallbackRejected(f"certificate URL {cert_url!r} is not PayPal's")
        public_key = self._certificate_key(cert_fetch(cert_url))
        body = request.body
        text = transmission_text(transmission_id=transmission_id, transmission_time=transmission_time,
                                 webhook_id=settings.PAYPAL_WEBHOOK_ID, body=body)
        if not rsa_sha256_verify(public_key, text.encode(), signature):
            raise CallbackRejected("PayPal webhook signature does not verify")
        try:
            event = json.loads(body)
        except ValueError:
            raise CallbackRejected("PayPal webhook body is not JSON") from None
        event_type = str(event.get("event_type", ""))
        resource = event.get("resource") or {}
        if event_type not in WEBHOOK_OUTCOMES:
            # Verified but not about a capture: acknowledged, nothing to do.
            return Notification(payment_id="", outcome="pending", amount=None, currency="", payload=event)
        notification = capture_notification(resource, payload=event)
        return Notification(payment_id=notification.payment_id, outcome=WEBHOOK_OUTCOMES[event_type],
                            amount=notification.amount, currency=notification.currency,
                            transaction_id=notification.transaction_id, payload=event)

    @staticmethod
    def _certificate_key(pem: bytes) -> rsa.RSAPublicKey:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise CallbackRejected("PayPal certificate cannot be read") from None
        now = timezone.now()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CallbackRejected("PayPal certificate is not valid now")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise CallbackRejected("PayPal certificate has no RSA key")
        return key

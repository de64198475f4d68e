"""The one provider interface: start a payment → redirect or instructions →
verified confirmation → the payment service marks it paid.

A provider never writes to the database. It turns a payment into a checkout
(a URL to send the payer to, or nothing when the payment page shows
instructions) and turns a provider's callback into a verified
``Notification``; ``payments.services`` decides what the notification does.
"""
from __future__ import annotations

import abc
import base64
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from payments.models import Payment

Outcome = Literal["succeeded", "declined", "cancelled", "pending"]


class CallbackRejected(Exception):
    """A callback that is not authentic or not understood (bad signature,
    unknown event, malformed payload). Nothing is changed."""


class ProviderUnavailable(Exception):
    """The provider could not be reached or refused to start the payment."""


@dataclass(frozen=True)
class CheckoutUrls:
    """Absolute URLs the provider sends the payer (and its callbacks) back to."""

    base_url: str  # scheme and host of the console, e.g. https://billing.example
    return_url: str
    cancel_url: str
    notify_url: str


@dataclass(frozen=True)
class Checkout:
    """What the payer does next: go to ``redirect_url``, or (empty) read the
    instructions on the payment page (wire transfer)."""

    redirect_url: str = ""
    provider_order_id: str = ""


@dataclass(frozen=True)
class Notification:
    """A verified statement of a provider about one of our payments.
    ``amount`` and ``currency`` are what the provider says it moved; the
    payment service checks them against the payment."""

    payment_id: str  # Payment.public_id as text (the provider's "our order number")
    outcome: Outcome
    amount: Decimal | None
    currency: str
    transaction_id: str = ""
    payload: dict = field(default_factory=dict)


class PaymentProvider(abc.ABC):
    """A way to pay. Subclasses read their configuration from settings at call
    time (so a deployment enables them through the environment)."""

    code: str = ""
    label: str = ""
    description: str = ""
    # Confirmed by a provider callback (online) or by staff (wire transfer).
    online: bool = True

    @abc.abstractmethod
    def is_configured(self) -> bool:
        """True when every setting the provider needs is present."""

    def supports(self, *, currency: str) -> bool:
        return True

    @abc.abstractmethod
    def checkout_start(self, *, payment: Payment, urls: CheckoutUrls, now: dt.datetime) -> Checkout:
        """Prepare the payment at the provider; may raise ProviderUnavailable."""

    def callback_verify(self, *, request: HttpRequest) -> Notification:
        """Verify an incoming callback; raise CallbackRejected if it is not authentic."""
        raise CallbackRejected(f"{self.label} sends no callbacks")

    def callback_ack(self) -> HttpResponse:
        """The answer that tells the provider the callback was handled."""
        return HttpResponse("OK", content_type="text/plain")

    def checkout_cancel(self, *, payment: Payment) -> None:  # noqa: B027 - optional hook
        """Called after a pending payment was cancelled on our side."""


# --- RSA helpers shared by the adapters ------------------------------------

def rsa_public_key_load(text: str) -> rsa.RSAPublicKey:
    """A public key as PEM, or as the bare base64 body providers' consoles show."""
    data = text.strip()
    if "-----BEGIN" not in data:
        body = "".join(data.split())
        data = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----"
    key = serialization.load_pem_public_key(data.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def rsa_private_key_load(text: str) -> rsa.RSAPrivateKey:
    """A private key as PEM (PKCS#1 or PKCS#8), or as a bare base64 PKCS#8 body."""
    data = text.strip()
    if "-----BEGIN" not in data:
        body = "".join(data.split())
        data = f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"
    key = serialization.load_pem_private_key(data.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def rsa_sha256_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_sha256_verify(key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, TypeError):
        return False
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True

"""The sandbox provider: a local checkout page that approves, declines or is
abandoned. It moves no money, so it is offered only when
``PAYMENTS_SANDBOX`` is on (default: with DEBUG); it serves development, the
demo and the tests.

It behaves like a real provider: the checkout page (the "provider side")
sends a notification signed with HMAC-SHA256 over the sorted parameters,
and that notification goes through the same verification and the same
payment service as Alipay's or PayPal's. ``/payments/callback/sandbox/``
accepts the same notification over HTTP, so replays can be tested.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy

from .base import CallbackRejected, Checkout, CheckoutUrls, Notification, PaymentProvider

FIELDS = ("payment", "outcome", "amount", "currency", "transaction_id")
OUTCOMES = ("succeeded", "declined", "cancelled", "pending")


def _key() -> bytes:
    secret = getattr(settings, "PAYMENTS_SANDBOX_SECRET", "")
    if secret:
        return secret.encode()
    return salted_hmac("payments.sandbox", "notification-key").digest()


def signing_string(params: dict[str, str]) -> str:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")


def notification_sign(params: dict[str, str]) -> dict[str, str]:
    """``params`` plus their ``signature`` (what the sandbox checkout sends)."""
    signature = hmac.new(_key(), signing_string(params).encode(), hashlib.sha256).hexdigest()
    return {**params, "signature": signature}


class SandboxProvider(PaymentProvider):
    code = "sandbox"
    label = gettext_lazy("Sandbox (test payment)")
    description = gettext_lazy("A local checkout page that approves or declines. No money moves.")

    def is_configured(self) -> bool:
        return bool(getattr(settings, "PAYMENTS_SANDBOX", False))

    def checkout_start(self, *, payment, urls: CheckoutUrls, now) -> Checkout:
        path = reverse("payments_sandbox_checkout", kwargs={"public_id": payment.public_id})
        return Checkout(redirect_url=urls.base_url + path)

    def notification_make(self, *, payment, outcome: str) -> dict[str, str]:
        """The signed notification the checkout page sends for ``payment``."""
        return notification_sign({
            "payment": str(payment.public_id), "outcome": outcome, "amount": f"{payment.amount:.2f}",
            "currency": payment.currency,
            "transaction_id": f"SBX-{secrets.token_hex(8).upper()}" if outcome == "succeeded" else "",
        })

    def notification_verify(self, *, params: dict[str, str]) -> Notification:
        signature = params.get("signature", "")
        expected = notification_sign({k: v for k, v in params.items() if k != "signature"})["signature"]
        if not signature or not hmac.compare_digest(signature, expected):
            raise CallbackRejected("sandbox notification signature does not verify")
        missing = [f for f in FIELDS if f not in params]
        if missing:
            raise CallbackRejected(f"sandbox notification lacks {', '.join(missing)}")
        if params["outcome"] not in OUTCOMES:
            raise CallbackRejected(f"unknown sandbox outcome {params['outcome']!r}")
        try:
            amount = Decimal(params["amount"])
        except InvalidOperation:
            raise CallbackRejected(f"sandbox amount {params['amount']!r} is not a number") from None
        return Notification(payment_id=params["payment"], outcome=params["outcome"], amount=amount,
                            currency=params["currency"], transaction_id=params["transaction_id"],
                            payload=dict(params))

    def callback_verify(self, *, request) -> Notification:
        return self.notification_verify(params=request.POST.dict())

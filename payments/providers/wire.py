"""Wire transfer: the payment page shows the bank details and the payment's
unique reference; staff confirm receipt in Django admin
(``payments.services.wire_confirm``), which completes the payment.

Configured by ``WIRE_BANK_DETAILS`` (free text, one item per line); offered
only when it is set.
"""
from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy

from .base import Checkout, CheckoutUrls, PaymentProvider


class WireProvider(PaymentProvider):
    code = "wire"
    label = gettext_lazy("Wire transfer")
    description = gettext_lazy("Transfer the amount to our bank account with the reference shown. "
                   "The payment completes when our staff confirm receipt (usually 1–3 business days).")
    online = False

    def is_configured(self) -> bool:
        return bool(getattr(settings, "WIRE_BANK_DETAILS", "").strip())

    def checkout_start(self, *, payment, urls: CheckoutUrls, now) -> Checkout:
        return Checkout()

    def bank_details(self) -> list[str]:
        return [line.strip() for line in settings.WIRE_BANK_DETAILS.strip().splitlines() if line.strip()]

"""Payment providers behind one interface (``base.PaymentProvider``).

``provider_get(code)`` returns a provider whether configured or not (a late
callback for a provider switched off must still be verifiable);
``providers_offered`` lists the ones a payer may choose now.
"""
from __future__ import annotations

from .alipay import AlipayProvider
from .base import (
    CallbackRejected,
    Checkout,
    CheckoutUrls,
    Notification,
    PaymentProvider,
    ProviderUnavailable,
)
from .paypal import PayPalProvider
from .sandbox import SandboxProvider
from .wire import WireProvider

# Display order on the pay pages.
PROVIDERS: dict[str, PaymentProvider] = {
    p.code: p for p in (AlipayProvider(), PayPalProvider(), WireProvider(), SandboxProvider())
}

__all__ = [
    "PROVIDERS", "CallbackRejected", "Checkout", "CheckoutUrls", "Notification", "PaymentProvider",
    "ProviderUnavailable", "provider_get", "providers_offered",
]


def provider_get(code: str) -> PaymentProvider:
    """The provider with ``code``; KeyError if there is none."""
    return PROVIDERS[code]


def providers_offered(*, currency: str) -> list[PaymentProvider]:
    """Configured providers that accept ``currency``, in display order."""
    return [p for p in PROVIDERS.values() if p.is_configured() and p.supports(currency=currency)]

"""Local emulators of Alipay's and PayPal's checkout and notification
protocols, for development, the demo, the browser tests and CI.

On only with ``PAYMENT_EMULATORS`` (never by default; ``check --deploy``
warns when it is on with DEBUG off). Then ``aurora_billing.settings``
points the Alipay and PayPal settings at them (``provider_settings``)
unless the environment sets them, and their URLs are mounted under
``/emulators/``. The adapters in ``payments.providers`` run unchanged
against them: only the gateway URL, the API base and the keys differ.

- ``alipay``: the ``alipay.trade.page.pay`` gateway. Verifies the request's
  RSA2 signature with the merchant's public key, shows a checkout page
  (Pay / Cancel), POSTs the RSA2-signed asynchronous notification to the
  request's ``notify_url`` and sends the payer back to ``return_url`` with
  a signed return.
- ``paypal``: OAuth2 client credentials, Orders v2 create and capture
  (idempotent by ``PayPal-Request-Id``), the approval page, the signing
  certificate, and a ``PAYMENT.CAPTURE.*`` webhook signed as PayPal signs
  it, POSTed to the console's callback URL when an order is captured.

The emulators keep orders in the Django cache and touch no database table.
Their notifications are delivered over HTTP (``delivery``), to this
machine or the host the request came to, and before the emulator answers
(so a test sees the outcome at once; the console handles either order).
"""
from __future__ import annotations

from . import keys

ALIPAY_GATEWAY_PATH = "/emulators/alipay/gateway.do"
PAYPAL_API_PATH = "/emulators/paypal"


def provider_settings(*, site_url: str) -> dict[str, str]:
    """The Alipay and PayPal settings that point the adapters at the
    emulators of the console at ``site_url``. The Alipay gateway is a path
    (the payer's browser goes there on the host it is on); PayPal's API
    base is absolute (the console calls it server-side)."""
    return {
        "ALIPAY_APP_ID": keys.ALIPAY_APP_ID,
        "ALIPAY_PRIVATE_KEY": keys.merchant_private_pem(),
        "ALIPAY_PUBLIC_KEY": keys.alipay_public_pem(),
        "ALIPAY_GATEWAY": ALIPAY_GATEWAY_PATH,
        "PAYPAL_CLIENT_ID": keys.PAYPAL_CLIENT_ID,
        "PAYPAL_CLIENT_SECRET": keys.PAYPAL_CLIENT_SECRET,
        "PAYPAL_WEBHOOK_ID": keys.PAYPAL_WEBHOOK_ID,
        "PAYPAL_API_BASE": f"{site_url.rstrip('/')}{PAYPAL_API_PATH}",
    }


def provider_emulated(code: str) -> bool:
    """True when provider ``code`` talks to its local emulator."""
    from django.conf import settings

    if not getattr(settings, "PAYMENT_EMULATORS", False):
        return False
    if code == "alipay":
        return settings.ALIPAY_GATEWAY == ALIPAY_GATEWAY_PATH
    if code == "paypal":
        return settings.PAYPAL_API_BASE.rstrip("/").endswith(PAYPAL_API_PATH)
    return False

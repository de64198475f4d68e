"""``check --deploy`` warns when the payment emulators are on with DEBUG off."""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def emulators_off_in_production(app_configs, **kwargs):
    if getattr(settings, "PAYMENT_EMULATORS", False) and not settings.DEBUG:
        return [Warning(
            "PAYMENT_EMULATORS is on with DEBUG off: Alipay and PayPal point at the local emulators, which "
            "approve payments without money.",
            hint="Unset PAYMENT_EMULATORS in production and configure the real gateways (docs/payments.md).",
            id="payments.W001",
        )]
    return []

"""Alipay (open platform, ``alipay.trade.page.pay``, RSA2).

Configured from the environment: ``ALIPAY_APP_ID``, ``ALIPAY_PRIVATE_KEY``
(the merchant application's key, signs requests), ``ALIPAY_PUBLIC_KEY``
(Alipay's key, verifies notifications), ``ALIPAY_GATEWAY``. Offered only
when all three are set.

- **Start**: the payer's browser is sent to the gateway with the request
  parameters signed: the parameters except ``sign`` sorted by name, joined
  as ``k=v`` with ``&``, signed SHA256withRSA with the merchant key,
  base64. ``out_trade_no`` is the payment's public id; an account currency
  other than CNY is sent as ``trans_currency``.
- **Notification** (POST to the notify URL): every parameter except
  ``sign`` and ``sign_type``, sorted, joined the same way, must verify
  against Alipay's public key; ``app_id`` must be ours. ``trade_status``
  TRADE_SUCCESS / TRADE_FINISHED means paid, TRADE_CLOSED closed unpaid,
  WAIT_BUYER_PAY nothing yet. The answer ``success`` stops Alipay's resends.
"""
from __future__ import annotations

import json
import uuid
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponse
from django.utils.translation import gettext_lazy

from core.periods import BILLING_TZ

from .base import (
    CallbackRejected,
    Checkout,
    CheckoutUrls,
    Notification,
    PaymentProvider,
    ProviderUnavailable,
    rsa_private_key_load,
    rsa_public_key_load,
    rsa_sha256_sign,
    rsa_sha256_verify,
)

TRADE_OUTCOMES = {
    "TRADE_SUCCESS": "succeeded",
    "TRADE_FINISHED": "succeeded",
    "TRADE_CLOSED": "cancelled",
    "WAIT_BUYER_PAY": "pending",
}


def signing_string(params: dict[str, str], *, exclude: tuple[str, ...]) -> str:
    """Sorted ``k=v`` pairs joined with ``&`` (the text Alipay signs)."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in exclude)


def out_trade_no(payment) -> str:
    return payment.public_id.hex


class AlipayProvider(PaymentProvider):
    code = "alipay"
    label = gettext_lazy("Alipay")
    description = gettext_lazy("Pay with Alipay (支付宝): you are sent to Alipay and come back here.")

    def is_configured(self) -> bool:
        return all(getattr(settings, name, "") for name in ("ALIPAY_APP_ID", "ALIPAY_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY"))

    def request_params(self, *, payment, urls: CheckoutUrls, now) -> dict[str, str]:
        biz = {
            "out_trade_no": out_trade_no(payment),
            "product_code": "FAST_INSTANT_TRADE_PAY",
            "total_amount": f"{payment.amount:.2f}",
            "subject": f"Aurora SendCloud {payment.reference}",
        }
        if payment.currency != "CNY":
            biz["trans_currency"] = payment.currency
        params = {
            "app_id": settings.ALIPAY_APP_ID,
            "method": "alipay.trade.page.pay",
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": now.astimezone(BILLING_TZ).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "return_url": urls.return_url,
            "notify_url": urls.notify_url,
            "biz_content": json.dumps(biz, separators=(",", ":"), ensure_ascii=False),
        }
        try:
            key = rsa_private_key_load(settings.ALIPAY_PRIVATE_KEY)
        except ValueError as exc:
            raise ProviderUnavailable(f"ALIPAY_PRIVATE_KEY cannot be read: {exc}") from None
        params["sign"] = rsa_sha256_sign(key, signing_string(params, exclude=("sign",)).encode())
        return params

    def checkout_start(self, *, payment, urls: CheckoutUrls, now) -> Checkout:
        params = self.request_params(payment=payment, urls=urls, now=now)
        return Checkout(redirect_url=f"{settings.ALIPAY_GATEWAY}?{urlencode(params)}")

    def params_verify(self, *, params: dict[str, str]) -> None:
        """Raise CallbackRejected unless ``params`` carry Alipay's valid RSA2
        signature and our app id."""
        if params.get("sign_type", "RSA2") != "RSA2":
            raise CallbackRejected(f"unsupported sign_type {params.get('sign_type')!r}")
        signature = params.get("sign", "")
        if not signature:
            raise CallbackRejected("Alipay notification carries no signature")
        try:
            key = rsa_public_key_load(settings.ALIPAY_PUBLIC_KEY)
        except ValueError as exc:
            raise CallbackRejected(f"ALIPAY_PUBLIC_KEY cannot be read: {exc}") from None
        text = signing_string(params, exclude=("sign", "sign_type"))
        if not rsa_sha256_verify(key, text.encode(), signature):
            raise CallbackRejected("Alipay signature does not verify")
        if params.get("app_id") != settings.ALIPAY_APP_ID:
            raise CallbackRejected(f"notification for another app id {params.get('app_id')!r}")

    def notification_verify(self, *, params: dict[str, str]) -> Notification:
        self.params_verify(params=params)
        status = params.get("trade_status", "")
        if status not in TRADE_OUTCOMES:
            raise CallbackRejected(f"unknown trade_status {status!r}")
        try:
            payment_id = str(uuid.UUID(params.get("out_trade_no", "")))
        except ValueError:
            raise CallbackRejected(f"out_trade_no {params.get('out_trade_no')!r} is not ours") from None
        try:
            amount = Decimal(params.get("total_amount", ""))
        except InvalidOperation:
            raise CallbackRejected(f"total_amount {params.get('total_amount')!r} is not a number") from None
        return Notification(
            payment_id=payment_id, outcome=TRADE_OUTCOMES[status], amount=amount,
            currency=params.get("trans_currency") or "CNY", transaction_id=params.get("trade_no", ""),
            payload=dict(params),
        )

    def callback_verify(self, *, request) -> Notification:
        return self.notification_verify(params=request.POST.dict())

    def return_payment_id(self, *, params: dict[str, str]) -> str:
        """The payment a verified synchronous return (GET) is about. The return
        proves nothing about the money: the notification does."""
        self.params_verify(params=params)
        try:
            return str(uuid.UUID(params.get("out_trade_no", "")))
        except ValueError:
            raise CallbackRejected("return without a valid out_trade_no") from None

    def callback_ack(self) -> HttpResponse:
        return HttpResponse("success", content_type="text/plain")

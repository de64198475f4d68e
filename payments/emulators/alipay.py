"""The emulated Alipay gateway: ``alipay.trade.page.pay`` with RSA2, as the
adapter (``payments.providers.alipay``) and Alipay's open platform speak it.

1. The payer's browser arrives at the gateway with the signed request. The
   signature (every parameter except ``sign``, sorted, ``k=v`` joined by
   ``&``, SHA256withRSA) is verified with the merchant's public key — the
   public half of ``ALIPAY_PRIVATE_KEY``, as if the merchant had uploaded
   it — and ``app_id`` must be ``ALIPAY_APP_ID``. A bad request gets
   Alipay's error page (``invalid-signature`` …), status 400.
2. The checkout page shows the trade; the payer clicks Pay or Cancel.
3. Pay: the trade is ``TRADE_SUCCESS``; Cancel: ``TRADE_CLOSED`` (as Alipay
   reports an unpaid trade that closes). The asynchronous notification,
   signed with the emulated Alipay's key over every parameter except
   ``sign`` and ``sign_type``, is POSTed to ``notify_url``; when the answer
   is ``success`` the payer is sent to ``return_url`` with the signed
   synchronous return. Otherwise the page shows what the console answered
   and offers to send it again (Alipay resends on its own schedule).

A trade is decided once (its state is kept in the cache); its ``trade_no``
follows from ``out_trade_no``, so paying twice can never look like two
payments.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.periods import BILLING_TZ
from payments.providers.base import rsa_private_key_load, rsa_sha256_sign, rsa_sha256_verify

from . import keys
from .delivery import deliver
from .views import emulators_on

TRADE_TTL_SECONDS = 24 * 3600
AMOUNT = re.compile(r"\d{1,10}(\.\d{1,2})?")


class GatewayError(Exception):
    """A request Alipay would refuse; ``code`` as on Alipay's error page."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TradeOrder:
    """A verified ``alipay.trade.page.pay`` request."""

    params: dict[str, str]
    out_trade_no: str
    total_amount: str
    subject: str
    trans_currency: str  # '' for CNY
    notify_url: str
    return_url: str

    @property
    def currency(self) -> str:
        return self.trans_currency or "CNY"


def signing_text(params: dict[str, str], *, exclude: tuple[str, ...]) -> bytes:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in exclude).encode()


def request_verify(params: dict[str, str]) -> TradeOrder:
    """The trade a signed page-pay request asks for; GatewayError if Alipay would refuse it."""
    if params.get("method") != "alipay.trade.page.pay":
        raise GatewayError("invalid-method", f"method {params.get('method')!r} is not alipay.trade.page.pay")
    if params.get("app_id") != settings.ALIPAY_APP_ID:
        raise GatewayError("invalid-app-id", f"app_id {params.get('app_id')!r} is not registered")
    if params.get("sign_type") != "RSA2":
        raise GatewayError("invalid-sign-type", "sign_type must be RSA2")
    if not params.get("sign"):
        raise GatewayError("missing-signature", "the request carries no sign")
    try:
        merchant_key = rsa_private_key_load(settings.ALIPAY_PRIVATE_KEY).public_key()
    except ValueError:
        raise GatewayError("invalid-app-key", "the merchant's public key is not set up") from None
    if not rsa_sha256_verify(merchant_key, signing_text(params, exclude=("sign",)), params["sign"]):
        raise GatewayError("invalid-signature", "the request's RSA2 signature does not verify")
    try:
        biz = json.loads(params.get("biz_content", ""))
    except ValueError:
        raise GatewayError("invalid-parameter", "biz_content is not JSON") from None
    amount = str(biz.get("total_amount", ""))
    try:
        positive = AMOUNT.fullmatch(amount) is not None and Decimal(amount) > 0
    except InvalidOperation:
        positive = False
    if not positive:
        raise GatewayError("invalid-parameter", f"total_amount {amount!r} is not an amount")
    if biz.get("product_code") != "FAST_INSTANT_TRADE_PAY" or not biz.get("out_trade_no") or not biz.get("subject"):
        raise GatewayError("invalid-parameter", "biz_content needs out_trade_no, subject and "
                                                "product_code FAST_INSTANT_TRADE_PAY")
    if not params.get("notify_url") or not params.get("return_url"):
        raise GatewayError("invalid-parameter", "notify_url and return_url are required")
    return TradeOrder(params=dict(params), out_trade_no=str(biz["out_trade_no"]), total_amount=amount,
                      subject=str(biz["subject"]), trans_currency=str(biz.get("trans_currency", "")),
                      notify_url=params["notify_url"], return_url=params["return_url"])


def trade_no_for(out_trade_no: str) -> str:
    """Alipay's 28-digit trade number of a merchant order (the same every time)."""
    return f"{int(hashlib.sha256(out_trade_no.encode()).hexdigest(), 16) % 10**28:028d}"


def _signed(params: dict[str, str]) -> dict[str, str]:
    text = signing_text(params, exclude=("sign", "sign_type"))
    return {**params, "sign": rsa_sha256_sign(keys.alipay_private_key(), text), "sign_type": "RSA2"}


def _alipay_time(now) -> str:
    return now.astimezone(BILLING_TZ).strftime("%Y-%m-%d %H:%M:%S")


def notification_params(order: TradeOrder, *, trade_status: str, now) -> dict[str, str]:
    """The asynchronous notification Alipay POSTs to ``notify_url``, signed."""
    params = {
        "notify_time": _alipay_time(now), "notify_type": "trade_status_sync",
        "notify_id": hashlib.sha256(f"{order.out_trade_no}{trade_status}".encode()).hexdigest()[:34],
        "app_id": settings.ALIPAY_APP_ID, "auth_app_id": settings.ALIPAY_APP_ID, "charset": "utf-8",
        "version": "1.0", "trade_no": trade_no_for(order.out_trade_no), "out_trade_no": order.out_trade_no,
        "trade_status": trade_status, "total_amount": order.total_amount, "subject": order.subject,
        "buyer_id": "2088102177846880", "seller_id": keys.ALIPAY_SELLER_ID, "gmt_create": _alipay_time(now),
    }
    if trade_status == "TRADE_SUCCESS":
        params |= {"gmt_payment": _alipay_time(now), "receipt_amount": order.total_amount,
                   "buyer_pay_amount": order.total_amount, "invoice_amount": order.total_amount}
    else:
        params |= {"gmt_close": _alipay_time(now)}
    if order.trans_currency:
        params["trans_currency"] = order.trans_currency
    return _signed(params)


def return_params(order: TradeOrder, *, now) -> dict[str, str]:
    """The synchronous return Alipay appends to ``return_url``, signed."""
    return _signed({
        "method": "alipay.trade.page.pay.return", "app_id": settings.ALIPAY_APP_ID,
        "auth_app_id": settings.ALIPAY_APP_ID, "charset": "utf-8", "version": "1.0",
        "timestamp": _alipay_time(now), "out_trade_no": order.out_trade_no,
        "trade_no": trade_no_for(order.out_trade_no), "total_amount": order.total_amount,
        "seller_id": keys.ALIPAY_SELLER_ID,
    })


def _return_url(order: TradeOrder, *, now) -> str:
    joiner = "&" if "?" in order.return_url else "?"
    return f"{order.return_url}{joiner}{urlencode(return_params(order, now=now))}"


def _trade_key(order: TradeOrder) -> str:
    return f"payments.emulators.alipay:{settings.ALIPAY_APP_ID}:{order.out_trade_no}"


def _error(request, exc: GatewayError):
    return render(request, "payments/emulators/alipay_error.html", {"error": exc}, status=400)


@csrf_exempt  # Alipay's gateway takes the merchant's cross-site form or redirect
@emulators_on
def gateway(request):
    params = (request.POST if request.method == "POST" else request.GET).dict()
    try:
        order = request_verify(params)
    except GatewayError as exc:
        return _error(request, exc)
    return render(request, "payments/emulators/alipay_checkout.html", {
        "order": order, "request_text": urlencode(order.params), "decided": cache.get(_trade_key(order)),
    })


@require_POST
@emulators_on
def decide(request):
    """Pay, Cancel, or send the notification again."""
    try:
        order = request_verify(dict(parse_qsl(request.POST.get("request", ""), keep_blank_values=True)))
    except GatewayError as exc:
        return _error(request, exc)
    action = request.POST.get("action", "")
    decided = cache.get(_trade_key(order))
    now = timezone.now()
    if action in ("pay", "cancel") and decided is None:
        decided = "TRADE_SUCCESS" if action == "pay" else "TRADE_CLOSED"
        cache.set(_trade_key(order), decided, TRADE_TTL_SECONDS)
    elif action not in ("pay", "cancel", "resend") or decided is None:
        return HttpResponseBadRequest("Unknown action for this trade.")
    elif action != "resend":
        # Decided before (the payer came back to the page): nothing is charged again.
        return render(request, "payments/emulators/alipay_checkout.html", {
            "order": order, "request_text": urlencode(order.params), "decided": decided})
    notification = notification_params(order, trade_status=decided, now=now)
    delivery = deliver(order.notify_url, body=urlencode(notification).encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                       request_host=request.get_host())
    if delivery.ok and delivery.body.strip() == "success":
        return redirect(_return_url(order, now=now))
    return render(request, "payments/emulators/alipay_undelivered.html", {
        "order": order, "request_text": urlencode(order.params), "decided": decided, "delivery": delivery,
        "return_url": _return_url(order, now=now),
    })

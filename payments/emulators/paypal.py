"""The emulated PayPal REST API (OAuth2, Orders v2) and webhooks, as the
adapter (``payments.providers.paypal``) and PayPal speak them.

- ``POST /v1/oauth2/token``: client credentials (HTTP Basic with
  ``PAYPAL_CLIENT_ID``/``PAYPAL_CLIENT_SECRET``) → a bearer token (signed,
  9 hours).
- ``POST /v2/checkout/orders``: intent CAPTURE, one or more purchase units;
  the same ``PayPal-Request-Id`` returns the same order. The answer links
  ``payer-action`` to the approval page.
- ``/checkoutnow?token=<order>``: the payer clicks Pay (the order is
  APPROVED; back to ``return_url?token=…&PayerID=…``) or Cancel (back to
  ``cancel_url?token=…``).
- ``POST /v2/checkout/orders/<id>/capture``: 422 ``ORDER_NOT_APPROVED``
  before approval; completes the capture once (the same request id gets the
  same answer, another one ``ORDER_ALREADY_CAPTURED``), and POSTs the
  ``PAYMENT.CAPTURE.COMPLETED`` webhook to the console's callback URL (on
  the host of the order's ``return_url``) before it answers.
- Webhooks are signed as PayPal signs them: SHA256withRSA over
  ``<transmission id>|<transmission time>|<webhook id>|<CRC32 of the body>``
  with the key of the certificate served at ``PAYPAL-CERT-URL``
  (``<api base>/v1/notifications/certs/<id>``).

Orders live in the Django cache for 6 hours.
"""
from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import re
import secrets
import string
import uuid
import zlib
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from payments.providers.base import rsa_sha256_sign

from . import keys
from .delivery import Delivery, deliver
from .views import emulators_on

ORDER_TTL_SECONDS = 6 * 3600
TOKEN_SECONDS = 32400
TOKEN_SALT = "payments.emulators.paypal.token"
AMOUNT = re.compile(r"\d{1,10}(\.\d{1,2})?")
AUTH_FAILED = {"name": "AUTHENTICATION_FAILURE", "message": "Authentication failed due to invalid authentication "
               "credentials or a missing Authorization header."}


def _id(length: int = 17) -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


def _time(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _problem(status: int, name: str, issue: str, description: str) -> JsonResponse:
    return JsonResponse({"name": name, "details": [{"issue": issue, "description": description}],
                         "message": description}, status=status)


def _order_key(order_id: str) -> str:
    return f"payments.emulators.paypal:order:{order_id}"


def order_load(order_id: str) -> dict | None:
    return cache.get(_order_key(order_id))


def _order_save(order: dict) -> None:
    cache.set(_order_key(order["id"]), order, ORDER_TTL_SECONDS)


def _public(order: dict, request) -> dict:
    """The order as the API answers it (without the emulator's bookkeeping)."""
    shown = {k: v for k, v in order.items() if not k.startswith("_")}
    self_url = request.build_absolute_uri(reverse("emulators:paypal_order", kwargs={"order_id": order["id"]}))
    links = [{"href": self_url, "rel": "self", "method": "GET"}]
    if order["status"] == "PAYER_ACTION_REQUIRED":
        approve = request.build_absolute_uri(reverse("emulators:paypal_checkout")) + "?" + urlencode(
            {"token": order["id"]})
        links.append({"href": approve, "rel": "payer-action", "method": "GET"})
    if order["status"] == "APPROVED":
        links.append({"href": f"{self_url}/capture", "rel": "capture", "method": "POST"})
    return shown | {"links": links}


def _bearer_ok(request) -> bool:
    kind, _, token = request.headers.get("Authorization", "").partition(" ")
    if kind != "Bearer" or not token:
        return False
    try:
        return signing.loads(token, salt=TOKEN_SALT, max_age=TOKEN_SECONDS) == settings.PAYPAL_CLIENT_ID
    except signing.BadSignature:
        return False


@csrf_exempt
@require_POST
@emulators_on
def token(request):
    kind, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        client_id, secret = "", ""
    if (kind != "Basic" or not hmac.compare_digest(client_id, settings.PAYPAL_CLIENT_ID)
            or not hmac.compare_digest(secret, settings.PAYPAL_CLIENT_SECRET)):
        return JsonResponse({"error": "invalid_client", "error_description": "Client Authentication failed"},
                            status=401)
    if request.POST.get("grant_type") != "client_credentials":
        return JsonResponse({"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"},
                            status=400)
    return JsonResponse({
        "scope": "https://uri.paypal.com/services/payments/payment", "token_type": "Bearer",
        "access_token": signing.dumps(client_id, salt=TOKEN_SALT), "app_id": "APP-EMULATOR0000000",
        "expires_in": TOKEN_SECONDS, "nonce": f"{_time(timezone.now())}{secrets.token_hex(8)}",
    })


def _order_body_check(body) -> str:
    """'' if ``body`` is an order this emulator takes, else the issue."""
    if not isinstance(body, dict) or body.get("intent") != "CAPTURE":
        return "intent must be CAPTURE"
    units = body.get("purchase_units")
    if not isinstance(units, list) or not units:
        return "purchase_units are required"
    for unit in units:
        amount = unit.get("amount") if isinstance(unit, dict) else None
        if (not isinstance(amount, dict) or not re.fullmatch(r"[A-Z]{3}", str(amount.get("currency_code", "")))
                or not AMOUNT.fullmatch(str(amount.get("value", "")))):
            return "each purchase unit needs amount.currency_code and amount.value"
    return ""


def _experience(body: dict) -> dict:
    return (((body.get("payment_source") or {}).get("paypal") or {}).get("experience_context")
            or body.get("application_context") or {})


@csrf_exempt
@emulators_on
def orders(request):
    """POST: create an order."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    if not _bearer_ok(request):
        return JsonResponse(AUTH_FAILED, status=401)
    request_id = request.headers.get("Paypal-Request-Id", "")
    if request_id:
        known = cache.get(f"payments.emulators.paypal:request:{request_id}")
        if known and (order := order_load(known)):
            return JsonResponse(_public(order, request), status=200)
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        return _problem(400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")
    issue = _order_body_check(body)
    if issue:
        return _problem(422, "UNPROCESSABLE_ENTITY", "INVALID_PARAMETER_VALUE", issue)
    experience = _experience(body)
    order = {
        "id": _id(), "intent": "CAPTURE", "status": "PAYER_ACTION_REQUIRED",
        "payment_source": {"paypal": {}}, "purchase_units": body["purchase_units"],
        "create_time": _time(timezone.now()),
        "_return_url": str(experience.get("return_url", "")), "_cancel_url": str(experience.get("cancel_url", "")),
        "_brand_name": str(experience.get("brand_name", "")), "_capture_request_id": "",
    }
    _order_save(order)
    if request_id:
        cache.set(f"payments.emulators.paypal:request:{request_id}", order["id"], ORDER_TTL_SECONDS)
    return JsonResponse(_public(order, request), status=201)


@require_safe
@emulators_on
def order_show(request, order_id: str):
    if not _bearer_ok(request):
        return JsonResponse(AUTH_FAILED, status=401)
    order = order_load(order_id)
    if order is None:
        return _problem(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
    return JsonResponse(_public(order, request))


def webhook_url(order: dict) -> str:
    """Where the webhook goes: the console's PayPal callback on the host the
    payer returns to (the webhook registered for PAYPAL_WEBHOOK_ID)."""
    parts = urlsplit(order["_return_url"])
    return f"{parts.scheme}://{parts.netloc}{reverse('payments_callback', kwargs={'method': 'paypal'})}"


def webhook_event(*, event_type: str, resource: dict, now: dt.datetime) -> dict:
    value = (resource.get("amount") or {}).get("value", "")
    currency = (resource.get("amount") or {}).get("currency_code", "")
    return {
        "id": f"WH-{_id(17)}-{_id(17)}", "event_version": "1.0", "create_time": _time(now),
        "resource_type": "capture", "resource_version": "2.0", "event_type": event_type,
        "summary": f"Payment {event_type.rsplit('.', 1)[-1].lower()} for {value} {currency}", "resource": resource,
    }


def webhook_signed(event: dict, *, api_base: str, now: dt.datetime | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook delivery, signed as PayPal signs them."""
    body = json.dumps(event, separators=(",", ":")).encode()
    transmission_id = str(uuid.uuid1())
    transmission_time = _time(now or timezone.now())
    text = f"{transmission_id}|{transmission_time}|{settings.PAYPAL_WEBHOOK_ID}|{zlib.crc32(body)}"
    return body, {
        "Content-Type": "application/json",
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": transmission_time,
        "PAYPAL-TRANSMISSION-SIG": rsa_sha256_sign(keys.paypal_private_key(), text.encode()),
        "PAYPAL-CERT-URL": f"{api_base.rstrip('/')}/v1/notifications/certs/{keys.paypal_certificate_id()}",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }


def _webhook_send(order: dict, capture: dict, *, request, now) -> Delivery:
    resource = capture | {"supplementary_data": {"related_ids": {"order_id": order["id"]}}}
    event = webhook_event(event_type="PAYMENT.CAPTURE.COMPLETED", resource=resource, now=now)
    body, headers = webhook_signed(event, api_base=settings.PAYPAL_API_BASE, now=now)
    return deliver(webhook_url(order), body=body, headers=headers, request_host=request.get_host())


@csrf_exempt
@require_POST
@emulators_on
def capture(request, order_id: str):
    if not _bearer_ok(request):
        return JsonResponse(AUTH_FAILED, status=401)
    order = order_load(order_id)
    if order is None:
        return _problem(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
    request_id = request.headers.get("Paypal-Request-Id", "")
    if order["status"] == "COMPLETED":
        if request_id and request_id == order["_capture_request_id"]:
            return JsonResponse(_public(order, request), status=201)
        return _problem(422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED", "Order already captured.")
    if order["status"] != "APPROVED":
        return _problem(422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED",
                        "Payer has not yet approved the Order for payment.")
    now = timezone.now()
    unit = order["purchase_units"][0]
    captured = {
        "id": _id(17), "status": "COMPLETED", "amount": unit["amount"], "final_capture": True,
        "custom_id": unit.get("custom_id", ""), "invoice_id": unit.get("invoice_id", ""),
        "seller_protection": {"status": "ELIGIBLE"}, "create_time": _time(now), "update_time": _time(now),
    }
    unit["payments"] = {"captures": [captured]}
    order |= {"status": "COMPLETED", "update_time": _time(now), "_capture_request_id": request_id}
    _order_save(order)
    order["_webhook"] = _webhook_send(order, captured, request=request, now=now).status
    _order_save(order)
    return JsonResponse(_public(order, request), status=201)


@emulators_on
def checkout(request):
    """The approval page: Pay or Cancel."""
    order_id = request.GET.get("token", "") or request.POST.get("token", "")
    order = order_load(order_id)
    if order is None:
        raise Http404("No such PayPal order.")
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "cancel":
            if order["status"] == "PAYER_ACTION_REQUIRED":
                order["status"] = "VOIDED"
                _order_save(order)
            joiner = "&" if "?" in order["_cancel_url"] else "?"
            return redirect(f"{order['_cancel_url']}{joiner}{urlencode({'token': order['id']})}")
        if action != "pay":
            return HttpResponseBadRequest("Unknown action.")
        if order["status"] == "PAYER_ACTION_REQUIRED":
            order["status"] = "APPROVED"
            order["payer"] = {"payer_id": _id(13), "email_address": "buyer@emulator.invalid",
                              "name": {"given_name": "Emulated", "surname": "Buyer"}}
            _order_save(order)
        if order["status"] not in ("APPROVED", "COMPLETED"):
            return _checkout_page(request, order)
        joiner = "&" if "?" in order["_return_url"] else "?"
        query = urlencode({"token": order["id"], "PayerID": order["payer"]["payer_id"]})
        return redirect(f"{order['_return_url']}{joiner}{query}")
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    return _checkout_page(request, order)


def _checkout_page(request, order: dict):
    return render(request, "payments/emulators/paypal_checkout.html", {
        "order": order, "unit": order["purchase_units"][0], "brand": order["_brand_name"]})


@require_safe
@emulators_on
def certificate(request, cert_id: str):
    if cert_id != keys.paypal_certificate_id():
        raise Http404("No such certificate.")
    return HttpResponse(keys.paypal_certificate_pem(), content_type="application/x-pem-file")

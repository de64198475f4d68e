"""Pay pages (repay, top-up, payment status and receipt), the sandbox
checkout and the provider callbacks. Views parse input, call one service,
render; every rule lives in payments.services."""
from __future__ import annotations

import logging
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from accounts.models import Membership
from accounts.permissions import account_required

from .forms import RepayForm, SandboxCheckoutForm, TopupForm, breakdown_token_make
from .models import Payment, PaymentEvent, PaymentPurpose, PaymentStatus
from .providers import (
    PROVIDERS,
    CallbackRejected,
    CheckoutUrls,
    ProviderUnavailable,
    provider_get,
    providers_offered,
)
from .providers.alipay import AlipayProvider
from .providers.paypal import PayPalProvider
from .providers.sandbox import SandboxProvider
from .selectors import (
    funds_balances,
    payment_get,
    payment_lines,
    payment_list,
    payment_pending_repayment,
    repayment_due,
)
from .services import (
    CallbackRefused,
    DueChanged,
    PaymentError,
    payment_cancel,
    payment_notification_handle,
    payment_start,
    repayment_create,
    sandbox_checkout_decide,
    topup_create,
)

log = logging.getLogger("aurora.payments")

PAYMENTS_PER_PAGE = 50


def _urls(request, payment: Payment) -> CheckoutUrls:
    base = request.build_absolute_uri("/").rstrip("/")
    detail = reverse("billing:payment_detail", kwargs={"public_id": payment.public_id})
    returns = {"alipay": reverse("payments_alipay_return"), "paypal": reverse("payments_paypal_return")}
    cancels = {"paypal": reverse("payments_paypal_cancel")}
    return CheckoutUrls(
        base_url=base,
        return_url=base + returns.get(payment.method, detail),
        cancel_url=base + cancels.get(payment.method, detail),
        notify_url=base + reverse("payments_callback", kwargs={"method": payment.method}),
    )


def _proceed(request, payment: Payment):
    """Send the payer on: to the provider's checkout for a pending payment,
    else to the payment's page (wire instructions, status, receipt)."""
    detail = redirect("billing:payment_detail", public_id=payment.public_id)
    if payment.status != PaymentStatus.PENDING:
        return detail
    try:
        checkout = payment_start(payment=payment, urls=_urls(request, payment), now=timezone.now())
    except ProviderUnavailable as exc:
        log.warning("payment %s could not be started: %s", payment.reference, exc)
        messages.error(request, gettext("%(provider)s is not reachable right now. Nothing was charged; try again "
                                        "shortly or choose another method.") % {
            "provider": provider_get(payment.method).label})
        return detail
    return redirect(checkout.redirect_url) if checkout.redirect_url else detail


@account_required("repay")
def repay(request):
    """GET: the total due with its breakdown and the methods. POST: create the
    repayment of exactly that breakdown (once per page) and go and pay it."""
    account = request.membership.account
    providers = providers_offered(currency=account.currency)
    status = 200
    errors: list[str] = []
    method = ""
    if request.method == "POST":
        form = RepayForm(request.POST, account_id=account.pk, providers=providers)
        if form.is_valid():
            breakdown = form.cleaned_data["breakdown"]
            try:
                payment, _ = repayment_create(
                    account=account, frozen=breakdown["lines"], method=form.cleaned_data["method"],
                    idempotency_key=breakdown["key"], user=request.user, now=timezone.now(),
                )
            except DueChanged as exc:
                messages.warning(request, str(exc))
                return redirect("billing:repay")
            except PaymentError as exc:
                messages.error(request, str(exc))
                return redirect("billing:repay")
            return _proceed(request, payment)
        # Nothing was created: show what is due now, with a fresh breakdown.
        status = 400
        errors = [e for field_errors in form.errors.values() for e in field_errors]
        method = request.POST.get("method", "")
    elif request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    due = repayment_due(account=account)
    # The breakdown shown is frozen into the form with a new idempotency key.
    form = RepayForm(initial={"breakdown": breakdown_token_make(account_id=account.pk, due=due), "method": method},
                     account_id=account.pk, providers=providers)
    return render(request, "payments/repay.html", {
        "account": account, "due": due, "form": form, "errors": errors, "providers": providers,
        "pending": payment_pending_repayment(account=account),
        "can_topup": request.membership.can("topup"),
    }, status=status)


@account_required("topup")
def topup(request):
    """GET: choose an amount and a method. POST: create the top-up and pay it."""
    account = request.membership.account
    providers = providers_offered(currency=account.currency)
    if request.method == "POST":
        form = TopupForm(request.POST, providers=providers, currency=account.currency)
        if form.is_valid():
            try:
                payment, _ = topup_create(
                    account=account, amount=form.cleaned_data["amount"], method=form.cleaned_data["method"],
                    idempotency_key=form.cleaned_data["idempotency_key"].hex, user=request.user, now=timezone.now(),
                )
            except PaymentError as exc:
                form.add_error(None, str(exc))
            else:
                return _proceed(request, payment)
        status = 400
    elif request.method in ("GET", "HEAD"):
        form = TopupForm(initial={"idempotency_key": uuid.uuid4()}, providers=providers, currency=account.currency)
        status = 200
    else:
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    funds = funds_balances(account_ids=[account.pk])[account.pk]
    return render(request, "payments/topup.html", {"account": account, "form": form, "providers": providers,
                                                   "funds": funds}, status=status)


@require_safe
@account_required("view")
def payments(request):
    account = request.membership.account
    page = Paginator(payment_list(account=account), PAYMENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "payments/payment_list.html", {"account": account, "page": page})


def _own_payment(request, public_id) -> Payment:
    payment = payment_get(account=request.membership.account, public_id=public_id)
    if payment is None:
        raise Http404("No such payment.")
    return payment


@require_safe
@account_required("view")
def payment_detail(request, public_id):
    """A payment's status: instructions while pending, the receipt when paid."""
    payment = _own_payment(request, public_id)
    provider = provider_get(payment.method)
    may_pay = request.membership.can("repay" if payment.purpose == PaymentPurpose.REPAYMENT else "topup")
    return render(request, "payments/payment_detail.html", {
        "payment": payment, "lines": payment_lines(payment=payment), "provider": provider,
        "bank_details": provider.bank_details() if payment.method == "wire" and provider.is_configured() else [],
        "may_pay": may_pay,
    })


@require_POST
@account_required("view")
def payment_continue(request, public_id):
    payment = _own_payment(request, public_id)
    if not request.membership.can("repay" if payment.purpose == PaymentPurpose.REPAYMENT else "topup"):
        raise Http404("No such payment.")
    return _proceed(request, payment)


@require_POST
@account_required("view")
def payment_cancel_view(request, public_id):
    payment = _own_payment(request, public_id)
    if not request.membership.can("repay" if payment.purpose == PaymentPurpose.REPAYMENT else "topup"):
        raise Http404("No such payment.")
    if payment_cancel(payment=payment, reason=f"cancelled by {request.user.email}", now=timezone.now()):
        messages.info(request, gettext("Payment %(reference)s was cancelled. Nothing was charged.") % {
            "reference": payment.reference})
    else:
        messages.warning(request, gettext("Payment %(reference)s is %(status)s and can no longer be cancelled.") % {
            "reference": payment.reference, "status": payment.get_status_display().lower()})
    return redirect("billing:payment_detail", public_id=payment.public_id)


# --- the sandbox checkout (the "provider side" of the sandbox) -------------


def _payer_payment(request, public_id, method: str) -> Payment:
    """A payment of ``method`` that the signed-in user may pay (member with the right role)."""
    payment = Payment.objects.select_related("account").filter(public_id=public_id, method=method).first()
    if payment is None:
        raise Http404("No such payment.")
    membership = Membership.objects.filter(user=request.user, account_id=payment.account_id).first()
    action = "repay" if payment.purpose == PaymentPurpose.REPAYMENT else "topup"
    if membership is None or not membership.can(action):
        raise Http404("No such payment.")
    return payment


@login_required
def sandbox_checkout(request, public_id):
    provider: SandboxProvider = PROVIDERS["sandbox"]
    if not provider.is_configured():
        raise Http404("The sandbox provider is off.")
    payment = _payer_payment(request, public_id, "sandbox")
    if request.method == "POST":
        form = SandboxCheckoutForm(request.POST)
        if not form.is_valid():
            return HttpResponseBadRequest("Unknown sandbox action.")
        action = form.cleaned_data["action"]
        now = timezone.now()
        if action == "abandon":
            payment_cancel(payment=payment, reason="abandoned at the sandbox checkout", now=now)
        else:
            sandbox_checkout_decide(payment=payment, approve=action == "approve", now=now)
        return redirect("billing:payment_detail", public_id=payment.public_id)
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    return render(request, "payments/sandbox_checkout.html", {"payment": payment})


# --- provider callbacks and returns -----------------------------------------


@csrf_exempt  # authenticated by the provider's signature instead
@require_POST
def provider_callback(request, method: str):
    """A provider's server-to-server notification: verified, checked against
    the payment, acted on once. 400 for anything refused (logged)."""
    provider = PROVIDERS.get(method)
    if provider is None or not provider.online or not provider.is_configured():
        raise Http404("Unknown payment provider.")
    now = timezone.now()
    body = request.body  # read first: kept for the audit trail, and PayPal signs the raw bytes
    try:
        notification = provider.callback_verify(request=request)
    except CallbackRejected as exc:
        log.warning("payment callback rejected method=%s: %s", method, exc)
        PaymentEvent.objects.create(method=method, kind="rejected", message=str(exc)[:500], at=now,
                                    payload={"body": body[:4000].decode(errors="replace")})
        return HttpResponseBadRequest("rejected", content_type="text/plain")
    try:
        payment_notification_handle(method=method, notification=notification, now=now)
    except CallbackRefused:
        return HttpResponseBadRequest("refused", content_type="text/plain")
    return provider.callback_ack()


@require_safe
@login_required
def alipay_return(request):
    """Alipay sends the payer back here (signed GET). The money is confirmed by
    the notification; this only shows the payment's page."""
    provider: AlipayProvider = PROVIDERS["alipay"]
    if not provider.is_configured():
        raise Http404("Alipay is not configured.")
    try:
        public_id = provider.return_payment_id(params=request.GET.dict())
    except CallbackRejected as exc:
        log.warning("Alipay return rejected: %s", exc)
        return redirect("billing:payments")
    return redirect("billing:payment_detail", public_id=_payer_payment(request, public_id, "alipay").public_id)


def _paypal_payment(request) -> Payment:
    token = request.GET.get("token", "")
    payment = Payment.objects.filter(method="paypal", provider_order_id=token).exclude(provider_order_id="").first()
    if payment is None:
        raise Http404("No such payment.")
    return _payer_payment(request, payment.public_id, "paypal")


@require_safe
@login_required
def paypal_return(request):
    """The payer approved the order at PayPal: capture it and confirm."""
    provider: PayPalProvider = PROVIDERS["paypal"]
    if not provider.is_configured():
        raise Http404("PayPal is not configured.")
    payment = _paypal_payment(request)
    if payment.status == PaymentStatus.PENDING:
        try:
            notification = provider.order_capture(payment=payment)
            payment_notification_handle(method="paypal", notification=notification, now=timezone.now())
        except ProviderUnavailable as exc:
            log.warning("PayPal capture of %s failed: %s", payment.reference, exc)
            messages.warning(request, gettext("PayPal has not confirmed the payment yet. This page updates when it "
                                              "does."))
        except (CallbackRejected, CallbackRefused) as exc:
            log.warning("PayPal capture of %s refused: %s", payment.reference, exc)
            messages.error(request, gettext("PayPal's answer did not match this payment. Nothing was booked; "
                                            "our staff have been notified."))
    return redirect("billing:payment_detail", public_id=payment.public_id)


@require_safe
@login_required
def paypal_cancel(request):
    """The payer cancelled at PayPal."""
    payment = _paypal_payment(request)
    payment_cancel(payment=payment, reason="cancelled at PayPal", now=timezone.now())
    return redirect("billing:payment_detail", public_id=payment.public_id)

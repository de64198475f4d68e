"""The console's history and insight pages (issue #17): thin views over
``aurora_billing.console.history`` and ``aurora_billing.console.insight``."""
from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.permissions import account_required
from core.periods import Period, PeriodError
from invoices.views import period_error_response

from .console.history import bills_history, funds_history, packs_history
from .console.insight import billing_insight

BILLS_PER_PAGE = 12
MOVEMENTS_PER_PAGE = 50


@require_GET
@account_required("view")
def bills(request):
    """``/billing/bills/?page=N``: every period's bill, newest first."""
    membership = request.membership
    rows = bills_history(account=membership.account, now=timezone.now())
    page = Paginator(rows, BILLS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "billing/history/bills.html", {
        "account": membership.account, "page": page, "tab": "bills",
        "can_export": membership.can("export"), "can_download": membership.can("statements"),
    })


@require_GET
@account_required("view")
def funds(request):
    """``/billing/funds/?page=N``: the funds ledger, newest movement first,
    each with the balance after it."""
    membership = request.membership
    history = funds_history(account=membership.account, now=timezone.now())
    page = Paginator(history.movements[::-1], MOVEMENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "billing/history/funds.html", {
        "account": membership.account, "history": history, "page": page, "tab": "funds",
        "can_topup": membership.can("topup"),
    })


@require_GET
@account_required("view")
def packs(request):
    """``/billing/packs/``: every email pack with what it covered."""
    membership = request.membership
    return render(request, "billing/history/packs.html", {
        "account": membership.account, "rows": packs_history(account=membership.account, now=timezone.now()),
        "tab": "packs",
    })


@require_GET
@account_required("view")
def insight(request):
    """``/billing/insight/?period=YYYY-MM`` (default: the current month)."""
    account = request.membership.account
    now = timezone.now()
    text = request.GET.get("period", "").strip()
    try:
        period = Period.parse(text) if text else Period.current(now)
        page = billing_insight(account=account, period=period, now=now)
    except PeriodError as exc:
        return period_error_response(request, account=account, now=now, requested=text, error=exc)
    return render(request, "billing/history/insight.html", {"account": account, "insight": page, "tab": "insight"})

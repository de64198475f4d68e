"""Site-level pages: home, the billing console page, help and error pages."""
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponseServerError, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.permissions import account_required
from core.periods import Period, PeriodError
from invoices.views import period_error_response
from usage.models import RESULT_CATEGORY, EmailResult, ServiceItem

from .console import billing_console
from .middleware import API_PREFIX, unavailable_response


def home(request):
    if request.user.is_authenticated:
        return redirect("billing:summary")
    return redirect("login")


@account_required("view")
def billing_summary(request):
    """The billing console: ``?period=YYYY-MM`` (default: the current month).
    A malformed or out-of-range period is a 400 page naming the periods
    that exist."""
    membership = request.membership
    account = membership.account
    now = timezone.now()
    text = request.GET.get("period", "").strip()
    try:
        period = Period.parse(text) if text else Period.current(now)
        console = billing_console(account=account, period=period, now=now)
    except PeriodError as exc:
        return period_error_response(request, account=account, now=now, requested=text, error=exc)
    return render(request, "billing/summary.html", {
        "account": account,
        "console": console,
        "can_export": membership.can("export"),
        "can_download": membership.can("statements") and console.is_settled,
        "can_repay": membership.can("repay") and console.total_due > 0,
    })


def help_billing(request):
    now = timezone.now()
    return render(request, "help/billing.html", {
        "current": Period.current(now),
        "previous": Period.current(now).previous(),
        "services": ServiceItem.objects.all(),
        "results": [(r.value, r.label, RESULT_CATEGORY[r.value]) for r in EmailResult],
    })


def _error(request, status: int, title: str, message: str):
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def bad_request(request, exception=None):
    message = str(exception) if exception and str(exception) else _("The request could not be understood.")
    return _error(request, 400, _("Bad request"), message)


def permission_denied(request, exception=None):
    message = str(exception) if exception and str(exception) else _("You may not do this.")
    return _error(request, 403, _("Not allowed"), message)


def page_not_found(request, exception=None):
    return _error(request, 404, _("Not found"), _("There is nothing here, or it is not yours to see."))


def server_error(request):
    # Rendered without the request's context processors: the failure may be
    # the database, which is a 503 (try again) rather than a 500.
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return unavailable_response(request)
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"error": {"code": "server_error", "message": "Something went wrong on our side; "
                                       "nothing was stored. Retry later."}}, status=500)
    return HttpResponseServerError(render_to_string("500.html"))


"""Site-level pages: home, the billing console page, help and error pages."""
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponseServerError
from django.shortcuts import redirect, render
from django.template.loader import render_to_string

from accounts.permissions import account_required

from .middleware import unavailable_response


def home(request):
    if request.user.is_authenticated:
        return redirect("billing:summary")
    return redirect("login")


@account_required("view")
def billing_summary(request):
    """The billing console (filled in by the console issue)."""
    return render(request, "billing/summary.html", {"account": request.membership.account})


def help_billing(request):
    return render(request, "help/billing.html")


def _error(request, status: int, title: str, message: str):
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def bad_request(request, exception=None):
    message = str(exception) if exception and str(exception) else "The request could not be understood."
    return _error(request, 400, "Bad request", message)


def permission_denied(request, exception=None):
    message = str(exception) if exception and str(exception) else "You may not do this."
    return _error(request, 403, "Not allowed", message)


def page_not_found(request, exception=None):
    return _error(request, 404, "Not found", "There is nothing here, or it is not yours to see.")


def server_error(request):
    # Rendered without the request's context processors: the failure may be
    # the database, which is a 503 (try again) rather than a 500.
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return unavailable_response()
    return HttpResponseServerError(render_to_string("500.html"))


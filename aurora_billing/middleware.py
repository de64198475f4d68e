"""A database outage answers 503, never a stack trace: a plain page for the
console, the API's JSON error shape under ``/api/``."""
import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone

from core.periods import BILLING_TZ

log = logging.getLogger("aurora.web")

API_PREFIX = "/api/"


def unavailable_response(request=None) -> HttpResponse:
    if request is not None and request.path.startswith(API_PREFIX):
        response = JsonResponse({"error": {
            "code": "unavailable",
            "message": "The service is temporarily unavailable; nothing was stored. Retry later.",
        }}, status=503)
    else:
        # Rendered without the request: context processors would query the database.
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = "30"
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        except (OperationalError, InterfaceError) as exc:  # raised outside a view
            log.error("database unavailable: %s", exc)
            return unavailable_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            log.error("database unavailable: %s", exception)
            return unavailable_response(request)
        return None


class BillingTimeZoneMiddleware:
    """Every page, Django admin included, shows times in the billing time
    zone (UTC+8), the one the bills are cut in; instants stay UTC in the
    database. Forms read typed times in UTC+8 too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with timezone.override(BILLING_TZ):
            return self.get_response(request)

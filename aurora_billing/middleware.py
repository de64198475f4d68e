"""A database outage answers 503 with a plain page, never a stack trace."""
import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string

log = logging.getLogger("aurora.web")


def unavailable_response() -> HttpResponse:
    # Rendered without the request: context processors would query the database.
    body = render_to_string("503.html")
    response = HttpResponse(body, status=503)
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
            return unavailable_response()

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            log.error("database unavailable: %s", exception)
            return unavailable_response()
        return None

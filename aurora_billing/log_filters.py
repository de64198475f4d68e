"""Logging filters named in settings.LOGGING."""
from __future__ import annotations

import logging


class ClientErrorsOneLine(logging.Filter):
    """``django.request`` logs a 4xx answer (a viewer opening the repay page:
    403) with the exception's full traceback. An ordinary refusal is one
    warning line; a 5xx keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True

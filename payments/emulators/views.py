"""What every emulator view shares."""
from __future__ import annotations

import functools

from django.conf import settings
from django.http import Http404


def emulators_on(view):
    """404 unless PAYMENT_EMULATORS is on (the URLs are mounted only then;
    this also holds where a test switches the setting off)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not getattr(settings, "PAYMENT_EMULATORS", False):
            raise Http404("The payment emulators are off.")
        return view(request, *args, **kwargs)

    return wrapped

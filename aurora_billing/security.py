"""Sign-in throttling: repeated failures for one email or one client address
are refused for a while (a 429 page), before the password is even checked."""
from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.shortcuts import render

log = logging.getLogger("aurora.security")


def _keys(request) -> list[str]:
    email = (request.POST.get("username") or "").strip().lower()
    address = request.META.get("REMOTE_ADDR", "")
    return [
        "login-fail:email:" + hashlib.sha256(email.encode()).hexdigest(),
        "login-fail:addr:" + hashlib.sha256(address.encode()).hexdigest(),
    ]


def _safe(op, *args, default=None):
    """The cache is Redis in production; a cache outage must not block sign-in."""
    try:
        return op(*args)
    except Exception as exc:  # noqa: BLE001 - any cache backend error
        log.warning("sign-in throttle cache unavailable: %s", exc)
        return default


def login_blocked(request) -> bool:
    limit = settings.LOGIN_FAILURE_LIMIT
    counts = _safe(cache.get_many, _keys(request), default={}) or {}
    return any(count >= limit for count in counts.values())


def login_failed(request) -> None:
    for key in _keys(request):
        if not _safe(cache.add, key, 1, settings.LOGIN_FAILURE_WINDOW, default=True):
            _safe(cache.incr, key)


def login_succeeded(request) -> None:
    _safe(cache.delete, _keys(request)[0])


class ThrottledLoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if login_blocked(request):
            log.warning("sign-in throttled for %s", request.META.get("REMOTE_ADDR", ""))
            minutes = settings.LOGIN_FAILURE_WINDOW // 60
            return render(request, "error.html", {
                "title": "Too many sign-in attempts",
                "message": f"Sign-in is paused for this email or address. Try again in {minutes} minutes, "
                           "or reset your password.",
            }, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        login_failed(self.request)
        return super().form_invalid(form)

    def form_valid(self, form):
        login_succeeded(self.request)
        return super().form_valid(form)

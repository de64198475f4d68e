"""Sign-in lockout (django-axes), the client address behind trusted proxies,
and rate limits that survive a cache outage (password reset).

Sign-in failures are counted by django-axes per (email, client address)
pair in the database, so a flood of wrong passwords locks only that pair:
other users at the same address sign in, and the owner of the email signs
in from anywhere else. Each further lockout of a pair lasts longer
(``lockout_cool_off``), and a password reset lifts every lock on the email.
See docs/operations.md, "Sign-in and password reset limits".
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from datetime import timedelta

from axes.utils import reset
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone

from accounts.tasks import password_reset_send
from core.queue import enqueue_on_commit

log = logging.getLogger("aurora.security")


# --- client address -------------------------------------------------------

def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in settings.TRUSTED_PROXY_NETWORKS)


def client_ip(request) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy
    (``TRUSTED_PROXY_IPS``); then the right-most ``X-Forwarded-For`` entry that
    is not itself a trusted proxy. A header sent by anyone else is ignored."""
    peer = request.META.get("REMOTE_ADDR", "")
    if not _trusted(peer):
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a malformed hop: fall back to the proxy itself
    return peer


# --- sign-in lockout (django-axes callables) ------------------------------

def sign_in_username(request, credentials) -> str:
    """Emails are case-insensitive (accounts.User): one counter per address."""
    value = (credentials or {}).get("username") or request.POST.get("username") or ""
    return str(value).strip().lower()


def lockout_cool_off(request) -> timedelta:
    """Progressive lock: the first lockout of an (email, address) pair lasts
    ``LOGIN_COOL_OFF_BASE`` seconds, each further one within a day three
    times longer, up to ``LOGIN_COOL_OFF_MAX``."""
    from axes.models import AccessFailureLog

    base, ceiling = settings.LOGIN_COOL_OFF_BASE, settings.LOGIN_COOL_OFF_MAX
    username = getattr(request, "axes_username", None) if request is not None else None
    address = getattr(request, "axes_ip_address", None) if request is not None else None
    if not username or not address:
        return timedelta(seconds=base)
    failures = AccessFailureLog.objects.filter(
        username=username, ip_address=address, attempt_time__gte=timezone.now() - timedelta(days=1),
    ).count()
    lockouts_before = max(0, failures // settings.AXES_FAILURE_LIMIT - 1)
    return timedelta(seconds=min(base * 3 ** min(lockouts_before, 10), ceiling))


def lockout_response(request, credentials, *args, **kwargs):
    log.warning("sign-in locked for %s from %s", sign_in_username(request, credentials)[:3] + "…",
                client_ip(request))
    return render(request, "error.html", {
        "title": "Too many sign-in attempts",
        "message": "Sign-in for this email is paused from this address after repeated wrong passwords. "
                   "Try again in a few minutes, or reset your password to sign in at once.",
    }, status=429)


class LoginView(auth_views.LoginView):
    """axes.middleware answers a locked pair; axes' backend refuses it first."""

    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        # the cool-off callable reads who is trying from where
        request.axes_username = sign_in_username(request, None)
        request.axes_ip_address = client_ip(request)
        return super().post(request, *args, **kwargs)


# --- rate limits with a per-process fallback -------------------------------

class _LocalWindow:
    """Fixed-window counters in this process, used while the cache is down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, window: int) -> int:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 10_000:  # bounded memory under a flood of keys
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            expires, count = self._counts.get(key, (now + window, 0))
            if expires <= now:
                expires, count = now + window, 0
            self._counts[key] = (expires, count + 1)
            return count + 1


_local = _LocalWindow()


def rate_hit(*, scope: str, subject: str, window: int) -> int:
    """Count one event for ``subject`` in ``scope`` and return the count within
    the window. Redis in production; when it is unreachable the count falls
    back to this process (logged), so a cache outage never lifts a limit."""
    key = f"rate:{scope}:" + hashlib.sha256(subject.encode()).hexdigest()
    try:
        if cache.add(key, 1, window):
            return 1
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        return 1
    except Exception as exc:  # noqa: BLE001 - any cache backend error
        log.warning("rate limit cache unavailable, counting in this process: %s", exc)
        return _local.hit(key, window)


class PasswordResetView(auth_views.PasswordResetView):
    """Throttled per email and per client address; the email itself is sent by
    a task (``accounts.tasks.password_reset_send``), so the answer takes the
    same time and says the same words whether or not the address exists."""

    def post(self, request, *args, **kwargs):
        form = self.get_form()
        valid = form.is_valid()
        address = client_ip(request)
        window = settings.PASSWORD_RESET_WINDOW
        too_many = rate_hit(scope="reset-client", subject=address, window=window) \
            > settings.PASSWORD_RESET_CLIENT_LIMIT
        if valid:
            too_many |= rate_hit(scope="reset-email", subject=form.cleaned_data["email"].lower(), window=window) \
                > settings.PASSWORD_RESET_EMAIL_LIMIT
        if too_many:
            log.warning("password reset throttled from %s", address)
            return render(request, "error.html", {
                "title": "Too many reset requests",
                "message": f"Please wait {window // 60} minutes before asking for another reset link.",
            }, status=429)
        if not valid:
            return self.form_invalid(form)
        enqueue_on_commit(password_reset_send, email=form.cleaned_data["email"])
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """A new password lifts every sign-in lock on the email."""

    def form_valid(self, form):
        response = super().form_valid(form)
        reset(username=form.user.email.lower())
        return response

"""Sign-in lockout and password-reset limits, through real HTTP against the
live test server (docs/operations.md, "Sign-in and password reset limits")."""
from __future__ import annotations

import http.cookiejar
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from ipaddress import ip_network

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.core import mail
from django.test import RequestFactory, override_settings
from django.utils import timezone

from aurora_billing import security

PASSWORD = "demo-pass-123"
# The live server's peer is 127.0.0.1: trusted as a proxy, the address a
# test gives in X-Forwarded-For stands for the client's.
BEHIND_PROXY = override_settings(TRUSTED_PROXY_IPS=["127.0.0.1"], TRUSTED_PROXY_NETWORKS=[ip_network("127.0.0.1")])


class Browser:
    """One client: its own cookies and, behind the proxy, its own address."""

    def __init__(self, base: str, address: str | None = None):
        self.base, self.address = base, address
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect())

    def _open(self, path: str, data: dict | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.address:
            headers["X-Forwarded-For"] = self.address
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body, headers=headers)
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def post_form(self, path: str, fields: dict, headers: dict | None = None):
        _, page = self._open(path, headers=headers)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        return self._open(path, {"csrfmiddlewaretoken": token, **fields},
                          headers={"Referer": self.base + path, **(headers or {})})

    def sign_in(self, email: str, password: str, headers: dict | None = None) -> int:
        return self.post_form("/accounts/login/", {"username": email, "password": password}, headers)[0]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def second_user(acme):
    from accounts.models import Membership, User

    user = User.objects.create_user("accountant@acme.example", PASSWORD)
    Membership.objects.create(account=acme, user=user, role="accountant")
    return user


@BEHIND_PROXY
def test_a_wrong_password_flood_locks_only_the_email_at_that_address(live_server, acme, second_user):
    attacker = Browser(live_server.url, "203.0.113.9")
    statuses = [attacker.sign_in("owner@acme.example", "wrong") for _ in range(6)]
    assert statuses[:4] == [200] * 4 and statuses[-1] == 429
    # the right password from the flooded pair is refused too while it lasts
    assert Browser(live_server.url, "203.0.113.9").sign_in("owner@acme.example", PASSWORD) == 429
    # another user at the same address (behind the same NAT) signs in
    assert Browser(live_server.url, "203.0.113.9").sign_in("accountant@acme.example", PASSWORD) == 302
    # the owner, from their own address, signs in
    assert Browser(live_server.url, "198.51.100.7").sign_in("OWNER@acme.example", PASSWORD) == 302


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(live_server, acme):
    """Without a trusted proxy, rotating X-Forwarded-For does not reset the count."""
    statuses = [Browser(live_server.url, f"192.0.2.{n}").sign_in("owner@acme.example", "wrong")
                for n in range(1, 7)]
    assert statuses[-1] == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@BEHIND_PROXY
def test_a_password_reset_lifts_the_lock(client, acme, django_capture_on_commit_callbacks):
    headers = {"HTTP_X_FORWARDED_FOR": "203.0.113.9", "REMOTE_ADDR": "127.0.0.1"}
    for _ in range(5):
        client.post("/accounts/login/", {"username": "owner@acme.example", "password": "wrong"}, **headers)
    assert client.post("/accounts/login/", {"username": "owner@acme.example", "password": PASSWORD},
                       **headers).status_code == 429
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password_reset/", {"email": "owner@acme.example"}, **headers)
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+)", mail.outbox[-1].body).group(1)
    form_page = client.get(link, follow=True)
    client.post(form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
                {"new_password1": "a-new-long-pass-42", "new_password2": "a-new-long-pass-42"}, **headers)
    assert not AccessAttempt.objects.filter(username="owner@acme.example").exists()
    response = client.post("/accounts/login/", {"username": "owner@acme.example",
                                                "password": "a-new-long-pass-42"}, **headers)
    assert response.status_code == 302


@pytest.mark.django_db
def test_each_further_lockout_of_a_pair_lasts_longer():
    request = RequestFactory().post("/accounts/login/")
    request.axes_username, request.axes_ip_address = "owner@acme.example", "203.0.113.9"

    def failures(count):
        AccessFailureLog.objects.bulk_create(AccessFailureLog(
            username="owner@acme.example", ip_address="203.0.113.9", user_agent="t", path_info="/accounts/login/",
            attempt_time=timezone.now(), locked_out=False) for _ in range(count))

    failures(5)
    assert security.lockout_cool_off(request) == timedelta(minutes=1)
    failures(5)
    assert security.lockout_cool_off(request) == timedelta(minutes=3)
    failures(5)
    assert security.lockout_cool_off(request) == timedelta(minutes=9)
    failures(50)
    assert security.lockout_cool_off(request) == timedelta(minutes=15)
    # another address's failures do not lengthen this pair's lock
    request.axes_ip_address = "198.51.100.7"
    assert security.lockout_cool_off(request) == timedelta(minutes=1)


@BEHIND_PROXY
def test_password_reset_is_limited_per_email_and_per_client(live_server, acme):
    mail.outbox.clear()
    browser = Browser(live_server.url, "203.0.113.20")
    statuses = [browser.post_form("/accounts/password_reset/", {"email": "owner@acme.example"})[0]
                for _ in range(4)]
    assert statuses == [302, 302, 302, 429]
    assert len(mail.outbox) == 3
    # per client: many addresses typed from one client
    other = Browser(live_server.url, "203.0.113.21")
    statuses = [other.post_form("/accounts/password_reset/", {"email": f"nobody{n}@example.com"})[0]
                for n in range(11)]
    assert statuses[:10] == [302] * 10 and statuses[10] == 429


def test_password_reset_says_the_same_for_unknown_addresses(client, acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        known = client.post("/accounts/password_reset/", {"email": "owner@acme.example"}, follow=True)
        unknown = client.post("/accounts/password_reset/", {"email": "nobody@example.com"}, follow=True)
    assert known.redirect_chain == unknown.redirect_chain
    # the same page, byte for byte, but for the per-render CSRF mask of the
    # header's language switcher form
    def unmasked(response):
        return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", response.content)
    assert b"csrfmiddlewaretoken" in known.content
    assert unmasked(known) == unmasked(unknown)
    assert [m.to for m in mail.outbox] == [["owner@acme.example"]]


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                       "LOCATION": "redis://127.0.0.1:1/0"}})
def test_the_reset_limit_holds_when_the_cache_is_down(client, acme, caplog):
    security._local._counts.clear()
    with caplog.at_level(logging.WARNING, logger="aurora.security"):
        statuses = [client.post("/accounts/password_reset/", {"email": "owner@acme.example"}).status_code
                    for _ in range(4)]
    assert statuses == [302, 302, 302, 429]
    assert "counting in this process" in caplog.text

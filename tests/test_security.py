"""Sign-in throttling, health check, database outage page, security headers."""
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_sign_in_is_throttled_after_repeated_failures(client, acme):
    for _ in range(5):
        response = client.post("/accounts/login/", {"username": "owner@acme.example", "password": "nope"})
        assert response.status_code == 200
    response = client.post("/accounts/login/", {"username": "owner@acme.example", "password": "demo-pass-123"})
    assert response.status_code == 429
    assert b"Too many sign-in attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_successful_sign_in_redirects_to_billing(client, acme):
    response = client.post("/accounts/login/", {"username": "OWNER@acme.example", "password": "demo-pass-123"})
    assert response.status_code == 302
    assert response["Location"] == "/billing/"


def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"


@override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0", CELERY_TASK_ALWAYS_EAGER=False)
def test_healthz_is_503_when_the_broker_is_unreachable(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")


@pytest.mark.parametrize("path", ["/billing/", "/accounts/login/", "/help/billing/"])
def test_database_outage_is_a_503_page_not_a_stack_trace(client, acme, path):
    """The database driver refuses every query (as when the server is down)."""
    client.force_login(acme.memberships.get().user)
    client.raise_request_exception = False
    with mock.patch("django.db.backends.utils.CursorWrapper.execute",
                    side_effect=OperationalError("connection refused")):
        response = client.get(path)
    assert response.status_code == 503
    assert b"temporarily unavailable" in response.content
    assert b"Traceback" not in response.content and b"OperationalError" not in response.content


def test_security_headers(client):
    response = client.get("/accounts/login/")
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_anonymous_users_are_sent_to_sign_in(client):
    response = client.get("/billing/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/billing/")

"""Sign-in lockout (more in test_sign_in_limits.py), health check, database outage page, security headers."""
import logging
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_sign_in_is_throttled_after_repeated_failures(client, acme):
    """The fifth wrong password locks the (email, address) pair (django-axes)."""
    statuses = [client.post("/accounts/login/", {"username": "owner@acme.example", "password": "nope"}).status_code
                for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
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
    assert response.json() == {"status": "fail", "database": "ok", "broker": "fail"}


def test_healthz_names_no_internals_when_the_database_is_down(client, caplog):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute",
                    side_effect=OperationalError("connection to 10.0.0.5 refused")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "fail"
    assert b"OperationalError" not in response.content and b"10.0.0.5" not in response.content
    assert "10.0.0.5" in caplog.text  # the reason is in the log, for operators


def test_the_api_answers_its_json_shape_during_a_database_outage(client):
    client.raise_request_exception = False
    with mock.patch("django.db.backends.utils.CursorWrapper.execute",
                    side_effect=OperationalError("connection refused")):
        response = client.post("/api/usage/", data=b'{"records": []}', content_type="application/json",
                               HTTP_AUTHORIZATION="Bearer whatever", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "30"
    assert response.json()["error"]["code"] == "unavailable"


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


def test_an_ordinary_403_is_one_log_line(client, acme, caplog):
    from accounts.models import Membership, User

    viewer = User.objects.create_user("viewer@acme.example", "demo-pass-123")
    Membership.objects.create(user=viewer, account=acme, role="viewer")
    client.force_login(viewer)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get("/billing/repay/").status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1 and records[0].levelname == "WARNING"
    assert records[0].exc_info is None and "Traceback" not in caplog.text


def test_in_process_tasks_touch_no_broker(acme, caplog, django_capture_on_commit_callbacks):
    """CELERY_TASK_ALWAYS_EAGER (demo, tests): a task runs here, kombu is never asked."""
    from core.queue import enqueue_on_commit
    from payments.tasks import payment_receipt_send_task

    with mock.patch("kombu.Connection.__init__", side_effect=AssertionError("broker touched")), \
            caplog.at_level(logging.DEBUG), django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(payment_receipt_send_task, 999_999)
    assert "could not enqueue" not in caplog.text and "No hostname" not in caplog.text
    assert "payment_receipt_send_task" in caplog.text and "succeeded" in caplog.text

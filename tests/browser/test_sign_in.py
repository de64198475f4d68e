import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_reaches_billing_and_sign_out(live_server, page, sign_in, screenshot, acme):
    page.goto(f"{live_server.url}/billing/")
    assert "/accounts/login/" in page.url
    screenshot(page, "sign-in")
    sign_in(page, live_server, "owner@acme.example")
    assert page.url.rstrip("/").endswith("/billing")
    assert "Acme Ltd" in page.content()
    page.click("text=Sign out")
    page.wait_for_load_state("networkidle")
    assert "/accounts/login/" in page.url or "Signed out" in page.content()


def test_wrong_password_is_refused(live_server, page, sign_in, acme):
    sign_in(page, live_server, "owner@acme.example", "wrong-password")
    assert "didn't match" in page.content()

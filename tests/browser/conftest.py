"""Playwright with Debian's Chromium (never a downloaded browser).

Fixtures: ``browser`` (session), ``page`` (fresh context per test),
``sign_in(page, live_server, email)``, ``screenshot(page, name)`` writing to
``test-artifacts/screenshots/``, ``periods`` (Acme with a Paid and an
Overdrawn month and month-to-date usage). Without Chromium or Playwright the tests
skip locally and fail under CI=true.
"""
from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from aurora_billing.settlement import bill_settle
from core.periods import Period
from payments.services import topup_record
from tests.support import PASSWORD, add_pack, add_price, add_usage, missing_service

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

# Playwright's sync API runs an event loop; Django refuses ORM calls from a
# thread with a running loop unless this is set (test process only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("Playwright for Python is not installed")
    if not Path(CHROMIUM).exists():
        missing_service(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def sign_in():
    def do(page, live_server, email: str, password: str = PASSWORD):
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", email)
        page.fill("#id_password", password)
        page.click("main button[type=submit]")  # the header holds the language switcher
        page.wait_for_load_state("networkidle")
        return page

    return do


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shoot(page, name: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return shoot


@pytest.fixture
def periods(acme):
    """Two settled months (one Paid, one Overdrawn) and month-to-date usage,
    relative to the real clock (the live server reads it)."""
    now = timezone.now()
    current = Period.current(now)
    overdrawn = current.previous().previous()
    paid = overdrawn.previous()
    for region in ("sg", "hk"):
        add_price("email", region, "0.000300", effective_from="2000-01-01")
        add_price("data_flow", region, "0.30", effective_from="2000-01-01")
    add_pack(acme, "sg", "pack-sg", 10_000, "2000-01-01", "2099-01-01")
    results = ("delivered", "soft_bounce", "format_error", "not_exist", "reject", "junk_mail")
    for period, scale in ((paid, 1), (overdrawn, 4), (current, 2)):
        for day in period.days()[:5]:
            for i, result in enumerate(results):
                add_usage(acme, "sg", "email", day.isoformat(), 1000 * scale // (i + 1), result=result)
                add_usage(acme, "hk", "email", day.isoformat(), 700 * scale // (i + 1), result=result)
            add_usage(acme, "sg", "data_flow", day.isoformat(), "3.5")
            add_usage(acme, "hk", "data_flow", day.isoformat(), "2.25")
    topup_record(account=acme, amount=Decimal("15.00"), reference="t1", at=paid.start)
    bill_settle(account=acme, period=paid, now=now)
    bill_settle(account=acme, period=overdrawn, now=now)
    return {"current": current, "paid": paid, "overdrawn": overdrawn}

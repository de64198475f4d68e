"""The alerts page and the summary's notice strip in a real browser: the
owner sets a funds threshold, alerts are evaluated, the strip and the
history show them (screenshots in test-artifacts/screenshots/)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from payments.alerts.services import alerts_evaluate
from payments.models import AlertSettings
from tests.support.payments import overdrawn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_alerts_page_and_summary_strip(live_server, page, sign_in, screenshot, acme):
    overdrawn(acme)  # October Overdrawn 1.72, funds 0.00, pack B empty
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/alerts/")
    page.check("#id_funds_low_on")
    page.fill("#id_funds_threshold", "50")
    page.click("#alert-settings button[type=submit]")
    page.wait_for_url("**/billing/alerts/")
    assert AlertSettings.objects.get(account=acme).funds_threshold == Decimal("50.00")
    raised = alerts_evaluate(account=acme, now=timezone.now())
    assert sorted(a.kind for a in raised) == ["funds_low", "overdrawn", "pack_low"]
    page.goto(f"{live_server.url}/billing/")
    strip = page.inner_text("#alert-strip")
    assert "3 active alerts" in strip and "October 2026 settled Overdrawn" in strip
    screenshot(page, "alerts-summary-strip", full_page=False)
    page.click("#alert-strip >> text=Alerts and settings")
    page.wait_for_url("**/billing/alerts/")
    assert page.locator("#alert-history tbody tr").count() == 3
    screenshot(page, "alerts-page")

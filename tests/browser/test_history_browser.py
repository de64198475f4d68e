"""The history and insight pages (issue #17) in Chromium: bills, insight,
funds and packs on desktop and at phone width, the insight period filter,
the month-over-month list opened with the mouse, and the same pages with
JavaScript off. Screenshots: test-artifacts/screenshots/history-*.png."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from core.periods import billing_day

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
PAGES = {"bills": "/billing/bills/", "insight": "/billing/insight/", "funds": "/billing/funds/",
         "packs": "/billing/packs/"}


def amount(text: str) -> Decimal:
    """``+1,234.50`` / ``-3.75`` as shown → Decimal."""
    return Decimal(text.strip().replace(",", "").replace("+", ""))


def no_sideways_scroll(page, width: int) -> bool:
    """Wide tables scroll inside their own box; the page itself never does."""
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_history_pages_on_desktop(live_server, page, sign_in, screenshot, periods):
    sign_in(page, live_server, "owner@acme.example")
    current, overdrawn, paid = periods["current"], periods["overdrawn"], periods["paid"]

    page.get_by_role("link", name="Bills", exact=True).first.click()
    page.wait_for_load_state("networkidle")
    assert [page.locator(f"#bill-{p} .status").inner_text().strip() for p in (current, overdrawn, paid)] == [
        "Pending", "Overdrawn", "Paid"]
    assert page.locator(f"#bill-{current} .downloads a", has_text="PDF").count() == 0  # nothing issued yet
    with page.expect_response(lambda r: r.url.endswith(".pdf") or "pdf" in r.url) as pdf:
        page.locator(f"#bill-{overdrawn} .downloads a", has_text="PDF").click()
    assert pdf.value.status == 200 and pdf.value.headers["content-type"] == "application/pdf"
    page.goto(f"{live_server.url}/billing/bills/")
    assert no_sideways_scroll(page, 1280)
    screenshot(page, "history-bills-desktop")

    page.goto(f"{live_server.url}/billing/insight/")
    assert page.locator("#chart-trend svg rect").count() >= 3  # two settled months and the estimate
    assert page.locator("#mom-summary").inner_text().strip()
    # A forecast from the month's second day (it needs one complete day).
    today = billing_day(timezone.now())
    assert page.locator("#forecast-summary").count() == (1 if today > current.first_day else 0)
    assert no_sideways_scroll(page, 1280)
    screenshot(page, "history-insight-desktop")

    page.select_option("#period", str(overdrawn))
    page.click(".period-filter button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("#mom-heading").inner_text().startswith(f"{overdrawn} against {paid}")
    assert page.locator("#forecast-summary").count() == 0  # settled: no forecast
    changes = page.locator("#mom-changes")
    assert not changes.is_visible()
    page.locator("details.mom-all > summary").click()
    assert changes.is_visible() and changes.locator("tbody tr").count() >= 1
    # The causes as shown add up to the difference as shown.
    shown = [amount(t) for t in page.locator("#mom-by-cause tbody td.num:last-child").all_inner_texts()]
    assert shown and sum(shown) == amount(page.locator("#mom-summary strong").first.inner_text())
    assert sum(amount(t) for t in changes.locator("tbody td.num:last-child").all_inner_texts()) == sum(shown)
    screenshot(page, "history-insight-settled-desktop")

    for name in ("funds", "packs"):
        page.goto(f"{live_server.url}{PAGES[name]}")
        assert page.locator("main table tbody tr").count() >= 1
        assert no_sideways_scroll(page, 1280)
        screenshot(page, f"history-{name}-desktop")


def test_history_pages_at_phone_width(live_server, browser, sign_in, screenshot, periods):
    context = browser.new_context(viewport=PHONE, locale="en-US", device_scale_factor=2)
    page = context.new_page()
    try:
        sign_in(page, live_server, "owner@acme.example")
        for name, path in PAGES.items():
            page.goto(f"{live_server.url}{path}")
            assert no_sideways_scroll(page, PHONE["width"]), name
            screenshot(page, f"history-{name}-phone")
        page.goto(f"{live_server.url}/billing/insight/")
        select = page.locator("#period")
        box = select.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        # The selected option's text fits: the select is not narrower than its text.
        assert page.evaluate("s => s.scrollWidth <= s.clientWidth + 1", select.element_handle())
        # The tables that stay tables keep their columns; the bills list stacks with labels.
        assert page.locator("#mom-by-cause thead").is_visible()
        page.goto(f"{live_server.url}/billing/bills/")
        assert page.locator("main table tbody td[data-label='Total']").first.is_visible()
    finally:
        context.close()


def test_history_pages_without_javascript(live_server, browser, sign_in, periods):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server, "owner@acme.example")
        page.goto(f"{live_server.url}/billing/insight/")
        page.select_option("#period", str(periods["overdrawn"]))
        page.click(".period-filter button[type=submit]")
        page.wait_for_load_state("networkidle")
        assert page.url.endswith(f"?period={periods['overdrawn']}")
        page.locator("details.mom-all > summary").click()  # native <details>: no script needed
        assert page.locator("#mom-changes").is_visible()
        page.goto(f"{live_server.url}/billing/funds/")
        assert page.locator("main table tbody tr").count() >= 1
    finally:
        context.close()

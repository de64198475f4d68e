"""The billing console in Chromium: sign in, change period, expand details
(mouse and keyboard), read statuses, follow Export Billings; the same at
phone width and with JavaScript off. Screenshots of each state go to
test-artifacts/screenshots/console-*.png."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def summary_statuses(page) -> dict[str, str]:
    rows = page.locator("table.summary tr.summary-row")
    return {rows.nth(i).locator("th").inner_text().split("\n")[0].strip():
            rows.nth(i).locator(".status").inner_text().strip() for i in range(rows.count())}


def test_console_flow(live_server, page, sign_in, screenshot, periods):
    sign_in(page, live_server, "owner@acme.example")
    assert page.url.rstrip("/").endswith("/billing")
    current, overdrawn, paid = periods["current"], periods["overdrawn"], periods["paid"]

    # The current month: month to date, Pending.
    assert summary_statuses(page) == {"Email": "Pending", "Data Flow": "Pending"}
    assert "Month to date." in page.locator(".notice-pending").inner_text()
    assert page.locator("#period").input_value() == str(current)
    assert page.locator("svg.chart-svg").count() == 2
    screenshot(page, "console-desktop-current")

    # Change period with the Date filter (a GET form).
    page.select_option("#period", str(overdrawn))
    page.click(".period-filter button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"/billing/?period={overdrawn}")
    assert summary_statuses(page) == {"Email": "Overdrawn", "Data Flow": "Overdrawn"}
    assert page.get_by_role("link", name="Repay overdrawn").get_attribute("href") == "/billing/repay/"
    statement = page.get_by_role("link", name="Download statement (PDF)")
    assert statement.get_attribute("href") == f"/billing/statements/{overdrawn}.pdf"
    screenshot(page, "console-desktop-overdrawn")

    # Expand the Email details with the mouse: per-region lines and results.
    email_details = page.locator("#service-email details")
    assert not email_details.locator("table.lines").first.is_visible()
    email_details.locator("summary").click()
    regions = email_details.locator("table.lines").first.locator("tbody tr")
    assert regions.count() == 2
    assert [regions.nth(i).locator("th").inner_text() for i in range(2)] == ["HK hk", "SG sg"]
    line_statuses = [regions.nth(i).locator(".status").inner_text() for i in range(2)]
    assert "Overdrawn" in line_statuses
    results = email_details.locator("table.results")
    assert results.is_visible()
    assert results.locator("thead").inner_text().split() == [
        "Region", "Delivered", "Soft", "Bounce", "Invalid", "All", "invalid", "Format", "Error", "Not", "Exist",
        "Reject", "Junk", "Mail"]
    screenshot(page, "console-desktop-details")

    # Expand the Data Flow details with the keyboard only.
    flow_summary = page.locator("#service-data_flow details > summary")
    flow_summary.focus()
    page.keyboard.press("Enter")
    assert page.locator("#service-data_flow details").get_attribute("open") is not None
    page.keyboard.press("Space")
    assert page.locator("#service-data_flow details").get_attribute("open") is None

    # "Expand all" (progressive enhancement) opens every row.
    page.get_by_role("button", name="Expand all").click()
    assert page.locator("table.summary details[open]").count() == 2

    # Follow the previous-period link to the Paid month.
    page.get_by_role("link", name=f"‹ {paid.label()}").click()
    page.wait_for_load_state("networkidle")
    assert summary_statuses(page) == {"Email": "Paid", "Data Flow": "Paid"}

    # Export Billings: the link is the contract; download it when the route exists.
    page.goto(f"{live_server.url}/billing/?period={overdrawn}")
    export = page.get_by_role("link", name="Export Billings (CSV)")
    assert export.get_attribute("href") == f"/billing/export.csv?period={overdrawn}"
    probe = page.request.get(f"{live_server.url}/billing/export.csv?period={overdrawn}")
    if probe.status == 404:
        pytest.skip("the export route is not there yet; the link's href was checked")
    assert probe.status == 200
    with page.expect_download() as info:
        export.click()
    download = info.value
    content = open(download.path(), encoding="utf-8").read()  # noqa: SIM115 - a test reads a temp file
    assert content.startswith("period,service_item,region,")
    assert f"{overdrawn},email,hk," in content and f"{overdrawn},email,sg," in content


def test_console_at_phone_width(live_server, browser, sign_in, screenshot, periods):
    context = browser.new_context(viewport=PHONE, locale="en-US", device_scale_factor=2)
    page = context.new_page()
    try:
        sign_in(page, live_server, "owner@acme.example")
        # Nothing is wider than the screen: no sideways scrolling of the page.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "console-phone-current")
        page.goto(f"{live_server.url}/billing/?period={periods['overdrawn']}")
        page.locator("#service-email details > summary").click()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        # Region cells carry their column name when tables stack.
        first_cell = page.locator("#service-email table.lines").first.locator("tbody td").first
        assert first_cell.get_attribute("data-label") == "Usage"
        screenshot(page, "console-phone-details")
    finally:
        context.close()


def test_console_without_javascript(live_server, browser, sign_in, screenshot, periods):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server, "owner@acme.example")
        assert page.locator("[data-enhance='details-toggle']").is_hidden()  # no dead buttons
        page.select_option("#period", str(periods["overdrawn"]))
        page.click(".period-filter button[type=submit]")
        page.wait_for_load_state("networkidle")
        assert summary_statuses(page) == {"Email": "Overdrawn", "Data Flow": "Overdrawn"}
        page.locator("#service-email details > summary").click()
        assert page.locator("#service-email table.results").is_visible()
    finally:
        context.close()


def test_bad_period_page(live_server, page, sign_in, screenshot, periods):
    sign_in(page, live_server, "owner@acme.example")
    response = page.goto(f"{live_server.url}/billing/?period=2026-13")
    assert response.status == 400
    assert "month must be 01 to 12, got 13" in page.inner_text("main")
    screenshot(page, "console-bad-period")
    page.click(".period-filter button[type=submit]")  # the form offers the periods that exist
    page.wait_for_load_state("networkidle")
    assert page.locator("table.summary").is_visible()


def test_help_page(live_server, page, screenshot):
    page.goto(f"{live_server.url}/help/billing/")
    assert page.get_by_role("heading", name="How billing works").is_visible()
    page.get_by_text("Why is this month marked Pending?").click()
    assert page.get_by_text("A month is billed on the 1st of the next month after 15:00 UTC+8").is_visible()
    screenshot(page, "console-help")


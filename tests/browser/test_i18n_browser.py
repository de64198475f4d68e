"""The console in Simplified Chinese in Chromium: switch the language in the
header, then walk the main pages (console, details, help, billing
information, repay, the statement PDF) and screenshot each
(test-artifacts/screenshots/zh-*.png); no page is wider than the window."""
from __future__ import annotations

import pytest

from accounts.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_main_pages_in_chinese(page, live_server, sign_in, screenshot, periods):  # noqa: F811
    sign_in(page, live_server, "owner@acme.example")
    page.select_option("#language-switch", "zh-hans")
    page.click(".language-switcher button[type=submit]")
    page.wait_for_load_state("networkidle")
    print(page.url, page.locator("html").get_attribute("lang"), page.locator("h1").inner_text())
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert User.objects.get(email="owner@acme.example").language == "zh-hans"
    assert "费用中心" in page.locator("h1").inner_text()
    assert no_horizontal_overflow(page)
    screenshot(page, "zh-console")

    page.goto(f"{live_server.url}/billing/?period={periods['overdrawn']}")
    statuses = page.locator("table.summary .col-status .status").all_inner_texts()
    assert "已欠费" in statuses
    page.locator("table.summary details summary").first.click()
    assert no_horizontal_overflow(page)
    screenshot(page, "zh-console-overdrawn-details")

    for path, name, heading in (("/help/billing/", "zh-help", "计费说明"),
                                ("/billing/info/", "zh-billing-info", "账单信息"),
                                ("/billing/repay/", "zh-repay", "欠费还款")):
        page.goto(f"{live_server.url}{path}")
        assert heading in page.locator("h1").inner_text()
        assert no_horizontal_overflow(page)
        screenshot(page, name)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/billing/?period={periods['overdrawn']}")
    assert no_horizontal_overflow(page)
    screenshot(page, "zh-console-phone")

    response = page.request.get(f"{live_server.url}/billing/statements/{periods['overdrawn']}.pdf")
    assert response.status == 200 and response.body().startswith(b"%PDF")
    from tests.browser.conftest import SCREENSHOTS

    (SCREENSHOTS / "zh-statement.pdf").write_bytes(response.body())

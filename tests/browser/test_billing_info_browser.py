"""The owner fills in billing information and uploads the business license
in a real browser; a refused file first, then a good one; then the page is
read-only with the license preview, also for a viewer."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from accounts.models import BillingInfo, Membership, User
from tests.support import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def license_png() -> bytes:
    """A legible mock business license."""
    image = Image.new("RGB", (900, 620), (250, 246, 236))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(CJK_FONT), 34) if CJK_FONT.exists() else ImageFont.load_default()
    small = ImageFont.truetype(str(CJK_FONT), 24) if CJK_FONT.exists() else ImageFont.load_default()
    draw.rectangle((20, 20, 880, 600), outline=(150, 30, 30), width=6)
    draw.text((300, 60), "营业执照", fill=(150, 30, 30), font=font)
    for i, line in enumerate(["名称：星辰科技有限公司", "统一社会信用代码：91310000MA1FL0000X",
                              "住所：上海市浦东新区世纪大道100号", "法定代表人：王芳"]):
        draw.text((80, 170 + i * 70), line, fill=(20, 20, 20), font=small)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def media(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(tmp_path / "media"), "base_url": None}},
    }
    return tmp_path / "media"


def fill(page):
    page.fill("#id_contact_name", "王芳")
    page.fill("#id_company_name", "星辰科技有限公司")
    page.fill("#id_website", "https://xingchen.example")
    page.fill("#id_company_address", "上海市浦东新区世纪大道100号")
    page.fill("#id_detailed_address", "环球金融中心 25 楼 2501 室")


def test_owner_fills_in_the_form_and_uploads_the_license(live_server, page, sign_in, screenshot, acme, media,
                                                       tmp_path):
    viewer = User.objects.create_user("viewer@acme.example", PASSWORD)
    Membership.objects.create(user=viewer, account=acme, role="viewer")

    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/info/")
    assert page.locator("h1").inner_text() == "Billing information · Acme Ltd"
    assert "JPG, JPEG or PNG" in page.locator("#license-rules").inner_text()
    assert "at most 2 MB" in page.locator("#license-rules").inner_text()
    screenshot(page, "billing-info-empty-form")

    # A GIF renamed .png is refused; the typed text stays.
    fake = tmp_path / "license.png"
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50), (0, 128, 0)).save(buffer, format="GIF")
    fake.write_bytes(buffer.getvalue())
    fill(page)
    page.set_input_files("#id_license", str(fake))
    page.click("form.billing-info-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "Nothing was saved" in page.locator("#form-error").inner_text()
    assert "is a GIF image, not a JPEG or PNG" in page.locator("#license-error").inner_text()
    assert page.input_value("#id_company_name") == "星辰科技有限公司"
    assert not BillingInfo.objects.exists()
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))
    screenshot(page, "billing-info-refused-upload")

    good = tmp_path / "营业执照.png"
    good.write_bytes(license_png())
    page.set_input_files("#id_license", str(good))
    page.click("form.billing-info-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/billing/info/")
    body = page.locator("main").inner_text()
    assert "Billing information submitted" in body
    assert "星辰科技有限公司" in body and "环球金融中心 25 楼 2501 室" in body
    assert "This information is locked" in body
    assert page.locator("input[type=file]").count() == 0
    # the preview image really loaded (served by the authenticated view)
    natural_width = page.locator("img.license-preview").evaluate("img => img.complete && img.naturalWidth")
    assert natural_width == 900
    screenshot(page, "billing-info-submitted")

    info = BillingInfo.objects.get(account=acme)
    assert info.company_name == "星辰科技有限公司"
    assert info.license_content_type == "image/png"

    # A viewer sees the same, read-only.
    page.context.clear_cookies()
    sign_in(page, live_server, "viewer@acme.example")
    page.goto(f"{live_server.url}/billing/info/")
    assert "星辰科技有限公司" in page.locator("main").inner_text()
    assert page.locator("form.billing-info-form").count() == 0
    screenshot(page, "billing-info-viewer")


def test_oversized_file_is_refused_with_a_page_not_a_broken_connection(live_server, page, sign_in, screenshot,
                                                                      acme, media, tmp_path):
    big = tmp_path / "scan.jpg"
    big.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 3_000_000)
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/info/")
    fill(page)
    page.set_input_files("#id_license", str(big))
    page.click("form.billing-info-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "Nothing was saved" in page.locator("#form-error").inner_text()
    assert "at most 2 MB (2,097,152 bytes)" in page.locator("#license-error").inner_text()
    # said once, not in the banner and again at the field
    assert page.locator("main").inner_text().count("2,097,152 bytes") == 1
    # the typed fields are kept (they were wiped)
    assert page.input_value("#id_contact_name") == "王芳"
    assert page.input_value("#id_company_name") == "星辰科技有限公司"
    assert page.input_value("#id_website") == "https://xingchen.example"
    assert page.input_value("#id_detailed_address") == "环球金融中心 25 楼 2501 室"
    assert not BillingInfo.objects.exists()
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))
    screenshot(page, "billing-info-too-large")

    # choosing a good file is all that is left to do
    good = tmp_path / "license.png"
    good.write_bytes(license_png())
    page.set_input_files("#id_license", str(good))
    page.click("form.billing-info-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "Billing information submitted" in page.locator("main").inner_text()
    assert BillingInfo.objects.get().company_name == "星辰科技有限公司"


def test_owner_adds_the_license_missing_from_provisioned_information(live_server, page, sign_in, screenshot,
                                                                   acme, media, tmp_path):
    BillingInfo.objects.create(account=acme, contact_name="王芳", company_name="星辰科技有限公司",
                               website="https://xingchen.example", company_address="上海市浦东新区世纪大道100号",
                               detailed_address="环球金融中心 25 楼 2501 室")
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/info/")
    text = page.locator("main").inner_text()
    assert "Waiting for the business license" in text and "Pending review" not in text
    screenshot(page, "billing-info-license-missing")

    good = tmp_path / "license.png"
    good.write_bytes(license_png())
    page.set_input_files("#id_license", str(good))
    page.click("form.license-add-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    text = page.locator("main").inner_text()
    assert "Business license added" in text and "Pending review" in text
    assert page.locator("input[type=file]").count() == 0
    natural_width = page.locator("img.license-preview").evaluate("img => img.complete && img.naturalWidth")
    assert natural_width == 900
    screenshot(page, "billing-info-license-added")


def test_staff_review_in_admin_is_shown_to_the_customer(live_server, page, sign_in, screenshot, acme, media,
                                                        tmp_path):
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/info/")
    fill(page)
    good = tmp_path / "license.png"
    good.write_bytes(license_png())
    page.set_input_files("#id_license", str(good))
    page.click("form.billing-info-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    info = BillingInfo.objects.get(account=acme)

    User.objects.create_superuser("admin@aurora.example", PASSWORD)
    page.context.clear_cookies()
    sign_in(page, live_server, "admin@aurora.example")
    page.goto(f"{live_server.url}/admin/accounts/billinginfo/{info.pk}/change/")
    natural_width = page.locator(".field-license_preview img").evaluate("img => img.complete && img.naturalWidth")
    assert natural_width == 900
    page.fill("#id_company_name", "星辰科技（上海）有限公司")
    page.select_option("#id_verification_status", "rejected")
    page.fill("#id_rejection_reason", "The license photo is cut off at the bottom; upload the whole page.")
    page.click("input[name=_continue]")
    page.wait_for_load_state("networkidle")
    history = page.locator(".billing-info-history").inner_text()
    assert "星辰科技有限公司" in history and "星辰科技（上海）有限公司" in history
    assert "admin@aurora.example" in history
    screenshot(page, "billing-info-admin-review")

    page.context.clear_cookies()
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server.url}/billing/info/")
    text = page.locator("main").inner_text()
    assert "Rejected" in text
    assert "The license photo is cut off at the bottom; upload the whole page." in text
    screenshot(page, "billing-info-rejected")

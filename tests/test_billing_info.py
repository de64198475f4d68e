"""/billing/info/ and the license view (billing-rules §7): the owner submits
once, bad uploads store nothing, roles, 404 for other accounts, headers."""
from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import SkipFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from accounts.middleware import SESSION_KEY
from accounts.models import Account, BillingInfo, BillingInfoChange, User
from accounts.services import BillingInfoLocked, billing_info_submit
from accounts.uploads import LICENSE_MAX_BYTES, LicenseUploadHandler, license_image_clean
from tests.support import add_price, add_usage, run_concurrently, utc
from tests.test_license_upload import BAD_UPLOADS, jpeg_bytes, memory_bomb, png_bytes, png_padded_to

INFO_URL = "/billing/info/"
LICENSE_URL = "/billing/info/license/"
FIELDS = {
    "contact_name": "王芳",
    "company_name": "星辰科技有限公司",
    "website": "https://xingchen.example",
    "company_address": "上海市浦东新区世纪大道100号",
    "detailed_address": "环球金融中心 25 楼 2501 室",
}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def media(settings, tmp_path):
    """Private file storage per test; returns a function listing stored files."""
    root = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(root), "base_url": None}},
    }

    def stored() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    stored.root = root
    return stored


@pytest.fixture
def team(make_account):
    account = make_account(users=(("owner@acme.example", "owner"), ("accountant@acme.example", "accountant"),
                                  ("viewer@acme.example", "viewer")))
    return account


@pytest.fixture
def other(make_account):
    return make_account(code="other", name="Other Co", users=(("bob@other.example", "owner"),))


def client_for(client, email: str):
    client.force_login(User.objects.get(email=email))
    return client


def post_info(client, content: bytes, name="license.png", content_type="image/png", **overrides):
    data = {**FIELDS, **overrides}
    if content is not None:
        data["license"] = SimpleUploadedFile(name, content, content_type=content_type)
    return client.post(INFO_URL, data)


def assert_nothing_stored(media, account):
    assert media() == []
    assert not BillingInfo.objects.filter(account=account).exists()
    assert not BillingInfoChange.objects.filter(account=account).exists()


# --- the form page -------------------------------------------------------------


def test_owner_sees_the_form_with_the_upload_requirements(client, team, media):
    response = client_for(client, "owner@acme.example").get(INFO_URL)
    assert response.status_code == 200
    html = response.content.decode()
    for label in ("Contact Name", "Company Name", "Website", "Company Address", "Detailed Address",
                  "Business License"):
        assert f">{label} <" in html or f">{label}<" in html
    assert "JPG, JPEG or PNG" in html
    assert "at most 2 MB" in html
    assert 'enctype="multipart/form-data"' in html
    assert 'accept=".jpg,.jpeg,.png,image/jpeg,image/png"' in html


def test_viewer_and_accountant_see_no_form_before_submission(client, team, media):
    for email in ("viewer@acme.example", "accountant@acme.example"):
        response = client_for(client, email).get(INFO_URL)
        assert response.status_code == 200
        assert b"<form method=\"post\" enctype" not in response.content
        assert b"has not been submitted yet" in response.content


def test_anonymous_is_sent_to_sign_in(client, team):
    response = client.get(INFO_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert client.get(LICENSE_URL).status_code == 302


# --- a good submission ---------------------------------------------------------------


def test_owner_submits_once_and_everything_is_stored_as_entered(client, team, media):
    client_for(client, "owner@acme.example")
    response = post_info(client, png_bytes((320, 200)), name="营业执照.png")
    assert response.status_code == 302
    assert response["Location"] == INFO_URL

    info = BillingInfo.objects.get(account=team)
    for key, value in FIELDS.items():
        assert getattr(info, key) == value
    assert info.submitted_by.email == "owner@acme.example"
    assert info.verification_status == "pending"
    assert info.license_content_type == "image/png"
    # a random name, not the uploaded one
    files = media()
    assert len(files) == 1
    assert files[0] == info.license_file.name
    assert files[0].startswith("licenses/") and len(files[0]) == len("licenses/") + 32
    stored = (media.root / files[0]).read_bytes()
    assert info.license_size == len(stored)
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "PNG" and image.size == (320, 200)

    changes = {c.field: c for c in BillingInfoChange.objects.filter(account=team)}
    assert set(changes) == {*FIELDS, "license"}
    assert changes["company_name"].old_value == ""
    assert changes["company_name"].new_value == "星辰科技有限公司"
    assert changes["company_name"].source == "console"
    assert changes["company_name"].changed_by.email == "owner@acme.example"
    assert info.license_sha256 in changes["license"].new_value

    page = client.get(INFO_URL).content.decode()
    assert "Billing information submitted" in page
    assert "星辰科技有限公司" in page and "环球金融中心 25 楼 2501 室" in page
    assert "This information is locked" in page and "contact support" in page
    assert 'type="file"' not in page
    assert "Pending review" in page


def test_valid_jpeg_is_accepted_and_stored_without_exif(client, team, media):
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Industries"
    client_for(client, "owner@acme.example")
    response = post_info(client, jpeg_bytes(exif=exif), name="scan.JPG", content_type="image/jpeg")
    assert response.status_code == 302
    info = BillingInfo.objects.get(account=team)
    assert info.license_content_type == "image/jpeg"
    stored = (media.root / info.license_file.name).read_bytes()
    assert b"SpyCam" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG" and dict(image.getexif()) == {}


def test_content_decides_not_the_name_or_declared_type(client, team, media):
    client_for(client, "owner@acme.example")
    response = post_info(client, png_bytes(), name="license.pdf", content_type="application/pdf")
    assert response.status_code == 302
    assert BillingInfo.objects.get(account=team).license_content_type == "image/png"


def test_website_without_scheme_gets_https(client, team, media):
    client_for(client, "owner@acme.example")
    assert post_info(client, png_bytes(), website="www.acme.example").status_code == 302
    assert BillingInfo.objects.get(account=team).website == "https://www.acme.example"


# --- bad uploads store nothing -------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "message"), [(n, c, m) for _, n, c, m in BAD_UPLOADS],
                         ids=[case[0] for case in BAD_UPLOADS])
def test_bad_upload_is_refused_and_nothing_is_stored(client, team, media, name, content, message):
    client_for(client, "owner@acme.example")
    declared = "image/jpeg" if name.endswith(".jpg") else "image/png"
    response = post_info(client, content(), name=name, content_type=declared)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was saved" in html
    assert message.replace("×", "×") in html
    assert_nothing_stored(media, team)
    # the text the owner typed is kept for the next try
    assert "星辰科技有限公司" in html


@pytest.mark.parametrize("size", [LICENSE_MAX_BYTES + 1, LICENSE_MAX_BYTES + 70_000, 3_000_000, 12_000_000])
def test_file_over_2_mb_is_refused_but_the_typed_fields_are_kept(client, team, media, size):
    """It used to wipe every field (the request was refused unread above
    2 MB + 64 KB) and say the same thing twice."""
    client_for(client, "owner@acme.example")
    response = post_info(client, b"\xff\xd8\xff\xe0" + b"\0" * (size - 4), name="scan.jpg",
                         content_type="image/jpeg")
    assert response.status_code == 400
    html = response.content.decode()
    for value in FIELDS.values():
        assert f'value="{value}"' in html
    assert html.count("at most 2 MB (2,097,152 bytes)") == 1
    assert html.count("Nothing was saved") == 1
    assert_nothing_stored(media, team)


def test_request_above_the_request_limit_is_refused_before_reading_the_body(client, team, media):
    from accounts.uploads import LICENSE_REQUEST_MAX_BYTES

    client_for(client, "owner@acme.example")
    body = b"--BoUnDaRy\r\n"
    response = client.generic("POST", INFO_URL, body, content_type="multipart/form-data; boundary=BoUnDaRy",
                              CONTENT_LENGTH=str(LICENSE_REQUEST_MAX_BYTES + 1))
    assert response.status_code == 413
    html = response.content.decode()
    assert html.count("at most 2 MB (2,097,152 bytes)") == 1
    assert html.count("Nothing was saved") == 1
    assert "32 MB" in html and "fill in the form again" in html
    assert_nothing_stored(media, team)


def test_request_above_the_size_limit_by_a_viewer_is_forbidden(client, team, media):
    client_for(client, "viewer@acme.example")
    response = post_info(client, png_padded_to(LICENSE_MAX_BYTES + 100_000))
    assert response.status_code == 403
    assert_nothing_stored(media, team)


def test_upload_handler_stops_buffering_past_the_limit():
    handler = LicenseUploadHandler(None, max_bytes=10)
    handler.new_file("license", "a.png", "image/png", None)
    handler.receive_data_chunk(b"123456", 0)
    with pytest.raises(SkipFile):
        handler.receive_data_chunk(b"78901", 6)
    assert handler.buffer is None
    assert handler.file_complete(11) is None
    assert "at most 2 MB" in handler.errors["license"]


def test_upload_handler_skips_files_in_other_fields():
    handler = LicenseUploadHandler(None)
    with pytest.raises(SkipFile):
        handler.new_file("avatar", "a.png", "image/png", None)


def test_second_file_field_is_ignored(client, team, media):
    client_for(client, "owner@acme.example")
    data = {**FIELDS, "license": SimpleUploadedFile("a.png", png_bytes(), "image/png"),
            "extra": SimpleUploadedFile("b.html", b"<html>", "text/html")}
    assert client.post(INFO_URL, data).status_code == 302
    assert len(media()) == 1


# --- field validation ---------------------------------------------------------------


def test_missing_fields_each_get_a_message(client, team, media):
    client_for(client, "owner@acme.example")
    response = client.post(INFO_URL, {})
    assert response.status_code == 400
    html = response.content.decode()
    for message in ("Enter the contact name.", "Enter the company name.", "Enter the company website.",
                    "Enter the company address.", "Enter the detailed address.",
                    "Choose the business license image (JPG, JPEG or PNG, at most 2 MB)."):
        assert message in html
    assert_nothing_stored(media, team)


@pytest.mark.parametrize("website", [
    "not a website", "javascript:alert(1)", "ftp://files.example.com", "http://localhost:8000",
    "http://127.0.0.1", "https://intranet", "https://" + "a" * 250 + ".com",
])
def test_website_must_be_a_real_http_url(client, team, media, website):
    client_for(client, "owner@acme.example")
    response = post_info(client, png_bytes(), website=website)
    assert response.status_code == 400
    assert b"Enter the company" in response.content or b"website address may be at most" in response.content
    assert_nothing_stored(media, team)


def png_with_damaged_data() -> bytes:
    """A header within every limit, image data cut short: only a decode finds it."""
    from tests.test_license_upload import png_chunk

    data = png_bytes((400, 300), (1, 2, 3))
    ihdr_end = 8 + 25
    return data[:ihdr_end] + png_chunk(b"IDAT", b"x\x9c" + b"\0" * 40) + png_chunk(b"IEND", b"")


def test_damaged_data_is_found_when_the_fields_are_right(client, team, media):
    client_for(client, "owner@acme.example")
    response = post_info(client, png_with_damaged_data())
    assert response.status_code == 400
    assert "damaged or truncated" in response.content.decode()


def test_text_errors_are_reported_without_decoding_the_license(client, team, media):
    """Issue #15: the license was decoded even when another field had
    already failed. The damage that a decode finds goes unreported, and
    the owner is asked to choose the file again."""
    client_for(client, "owner@acme.example")
    response = post_info(client, png_with_damaged_data(), website="not a website")
    assert response.status_code == 400
    html = response.content.decode()
    assert "Enter the company website" in html
    assert "damaged or truncated" not in html
    assert "Choose the file again" in html
    assert_nothing_stored(media, team)


@pytest.mark.parametrize(("content", "message"), [
    (memory_bomb, "would need about 153 MB"),
    (lambda: b"GIF89a" + b"\0" * 100, "is a GIF image"),
], ids=["memory-bomb", "gif"])
def test_header_checks_still_run_when_a_text_field_failed(client, team, media, content, message):
    client_for(client, "owner@acme.example")
    response = post_info(client, content(), company_name="")
    assert response.status_code == 400
    html = response.content.decode()
    assert "Enter the company name." in html and message in html
    assert "Choose the file again" not in html
    assert_nothing_stored(media, team)


def test_busy_decoder_answers_503_try_again_and_keeps_the_fields(client, team, media, settings):
    from accounts.uploads import decode_slots

    settings.BILLING_LICENSE_DECODE_WAIT_SECONDS = 0.05
    slots = decode_slots()
    held = 0
    while slots.acquire(blocking=False):
        held += 1
    try:
        client_for(client, "owner@acme.example")
        response = post_info(client, png_bytes())
    finally:
        for _ in range(held):
            slots.release()
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    html = response.content.decode()
    assert "try again in a minute" in html
    assert f'value="{FIELDS["company_name"]}"' in html
    assert_nothing_stored(media, team)
    assert post_info(client, png_bytes()).status_code == 302


def test_lengths_are_checked_per_field(client, team, media):
    client_for(client, "owner@acme.example")
    response = post_info(client, png_bytes(), company_name="公" * 201, contact_name="x" * 101)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Company Name may be at most 200 characters (it has 201)." in html
    assert "Contact Name may be at most 100 characters (it has 101)." in html
    assert_nothing_stored(media, team)


def test_exactly_the_maximum_lengths_are_accepted(client, team, media):
    client_for(client, "owner@acme.example")
    response = post_info(client, png_bytes(), company_name="公" * 200, contact_name="x" * 100,
                         company_address="路" * 300, detailed_address="楼" * 300)
    assert response.status_code == 302
    assert BillingInfo.objects.get(account=team).company_name == "公" * 200


# --- roles and the one submission -------------------------------------------------------


@pytest.mark.parametrize("email", ["viewer@acme.example", "accountant@acme.example"])
def test_viewer_and_accountant_cannot_submit(client, team, media, email):
    client_for(client, email)
    response = post_info(client, png_bytes())
    assert response.status_code == 403
    assert_nothing_stored(media, team)


def test_second_submission_by_the_owner_is_refused(client, team, media):
    client_for(client, "owner@acme.example")
    assert post_info(client, png_bytes()).status_code == 302
    history = BillingInfoChange.objects.count()
    first_file = media()

    response = post_info(client, jpeg_bytes(), company_name="Changed Ltd")
    assert response.status_code == 409
    assert b"already been submitted" in response.content
    assert b"Contact support to modify it." in response.content
    info = BillingInfo.objects.get(account=team)
    assert info.company_name == "星辰科技有限公司"
    assert info.license_content_type == "image/png"
    assert media() == first_file
    assert BillingInfoChange.objects.count() == history


def test_service_refuses_a_second_submission_and_stores_no_file(team, media):
    owner = User.objects.get(email="owner@acme.example")
    license = license_image_clean(data=png_bytes())
    billing_info_submit(account=team, user=owner, values=FIELDS, license=license, now=utc(2026, 10, 1))
    with pytest.raises(BillingInfoLocked):
        billing_info_submit(account=team, user=owner, values={**FIELDS, "company_name": "Other"},
                            license=license, now=utc(2026, 10, 2))
    assert len(media()) == 1
    assert BillingInfo.objects.get(account=team).company_name == FIELDS["company_name"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_store_exactly_one(postgres, team, media):
    owner = User.objects.get(email="owner@acme.example")
    license = license_image_clean(data=png_bytes())
    outcomes = run_concurrently(*[
        lambda n=n: billing_info_submit(account=team, user=owner, values={**FIELDS, "company_name": f"Co {n}"},
                                        license=license, now=timezone.now())
        for n in range(4)])
    assert sorted("locked" if isinstance(o, BillingInfoLocked) else o if isinstance(o, Exception) else "stored"
                  for o in outcomes) == ["locked", "locked", "locked", "stored"]
    assert BillingInfo.objects.filter(account=team).count() == 1
    assert len(media()) == 1
    assert BillingInfoChange.objects.filter(account=team, field="company_name").count() == 1


# --- the license file ---------------------------------------------------------------------


@pytest.fixture
def submitted(client, team, media):
    client_for(client, "owner@acme.example")
    assert post_info(client, png_bytes((120, 80))).status_code == 302
    client.logout()
    return BillingInfo.objects.get(account=team)


@pytest.mark.parametrize("email", ["owner@acme.example", "accountant@acme.example", "viewer@acme.example"])
def test_account_users_get_the_license_with_safe_headers(client, submitted, media, email):
    response = client_for(client, email).get(LICENSE_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline")
    assert "private" in response["Cache-Control"] and "no-store" in response["Cache-Control"]
    assert "sandbox" in response["Content-Security-Policy"]
    body = b"".join(response.streaming_content)
    assert body == (media.root / submitted.license_file.name).read_bytes()


def test_another_accounts_user_gets_404(client, submitted, other):
    response = client_for(client, "bob@other.example").get(LICENSE_URL)
    assert response.status_code == 404
    assert not getattr(response, "streaming", False)


def test_member_of_two_accounts_sees_only_the_current_accounts_license(client, submitted, other):
    bob = User.objects.get(email="bob@other.example")
    submitted.account.memberships.create(user=bob, role="viewer")
    client.force_login(bob)
    session = client.session
    session[SESSION_KEY] = other.pk
    session.save()
    assert client.get(LICENSE_URL).status_code == 404
    session[SESSION_KEY] = submitted.account_id
    session.save()
    assert client.get(LICENSE_URL).status_code == 200


def test_staff_without_membership_use_admin_not_the_console(client, submitted):
    staff = User.objects.create_user("staff@aurora.example", "pw-123456789", is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get(LICENSE_URL).status_code == 404
    response = client.get(reverse("admin:accounts_billinginfo_license", args=[submitted.pk]))
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "image/png"


def test_staff_without_view_permission_are_refused_in_admin(client, submitted):
    staff = User.objects.create_user("intern@aurora.example", "pw-123456789", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:accounts_billinginfo_license", args=[submitted.pk])).status_code == 403


def test_non_staff_cannot_use_the_admin_license_url(client, submitted):
    client_for(client, "owner@acme.example")
    response = client.get(reverse("admin:accounts_billinginfo_license", args=[submitted.pk]))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_license_has_no_public_url(client, submitted):
    name = submitted.license_file.name
    for path in (f"/media/{name}", f"/{name}", f"/static/{name}"):
        assert client.get(path).status_code == 404


def test_missing_license_is_404(client, team, media):
    BillingInfo.objects.create(account=team, **FIELDS)
    assert client_for(client, "owner@acme.example").get(LICENSE_URL).status_code == 404


def test_provisioned_information_without_license_says_what_is_missing(client, team, media):
    """It said "Pending review" with no license on file and no way to add one."""
    BillingInfo.objects.create(account=team, **FIELDS)
    page = client_for(client, "viewer@acme.example").get(INFO_URL).content.decode()
    assert "Pending review" not in page
    assert "Waiting for the business license" in page
    assert "the account owner can upload it here" in page
    assert 'type="file"' not in page

    page = client_for(client, "owner@acme.example").get(INFO_URL).content.decode()
    assert "Pending review" not in page
    assert "Waiting for the business license" in page
    assert "This information is locked" in page
    assert page.count('type="file"') == 1
    assert 'name="company_name"' not in page


def test_owner_adds_the_missing_license_once(client, team, media):
    BillingInfo.objects.create(account=team, **FIELDS)
    client_for(client, "owner@acme.example")
    # the text fields of this form are ignored: only staff change them
    response = post_info(client, png_bytes((120, 80)), company_name="Changed Ltd")
    assert response.status_code == 302
    info = BillingInfo.objects.get(account=team)
    assert info.company_name == FIELDS["company_name"]
    assert info.license_content_type == "image/png"
    assert media() == [info.license_file.name]
    change = BillingInfoChange.objects.get(account=team)
    assert (change.field, change.old_value, change.source) == ("license", "", "console")
    assert change.changed_by.email == "owner@acme.example"
    page = client.get(INFO_URL).content.decode()
    assert "Business license added" in page and "Pending review" in page
    assert 'type="file"' not in page

    response = post_info(client, jpeg_bytes())
    assert response.status_code == 409
    assert b"already been submitted" in response.content
    assert media() == [info.license_file.name]
    assert BillingInfoChange.objects.filter(account=team).count() == 1


def test_adding_a_license_after_a_rejection_puts_it_back_for_review(client, team, media):
    BillingInfo.objects.create(account=team, verification_status="rejected",
                               rejection_reason="No business license was provided.", **FIELDS)
    client_for(client, "owner@acme.example")
    page = client.get(INFO_URL).content.decode()
    assert "No business license was provided." in page and 'type="file"' in page
    assert post_info(client, png_bytes()).status_code == 302
    info = BillingInfo.objects.get(account=team)
    assert (info.verification_status, info.rejection_reason) == ("pending", "")
    assert set(BillingInfoChange.objects.filter(account=team).values_list("field", flat=True)) == {
        "license", "verification_status", "rejection_reason"}


def test_a_bad_missing_license_is_refused_and_nothing_stored(client, team, media):
    BillingInfo.objects.create(account=team, **FIELDS)
    client_for(client, "owner@acme.example")
    response = post_info(client, b"GIF89a" + b"\0" * 100)
    assert response.status_code == 400
    assert b"is a GIF image" in response.content
    assert media() == []
    assert not BillingInfoChange.objects.filter(account=team).exists()
    response = post_info(client, b"\xff\xd8\xff\xe0" + b"\0" * 3_000_000)
    assert response.status_code == 400
    assert response.content.decode().count("at most 2 MB (2,097,152 bytes)") == 1


@pytest.mark.parametrize("email", ["viewer@acme.example", "accountant@acme.example"])
def test_only_the_owner_adds_the_missing_license(client, team, media, email):
    BillingInfo.objects.create(account=team, **FIELDS)
    assert post_info(client_for(client, email), png_bytes()).status_code == 403
    assert media() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_license_additions_store_exactly_one(postgres, team, media):
    from accounts.services import billing_info_license_add

    owner = User.objects.get(email="owner@acme.example")
    BillingInfo.objects.create(account=team, **FIELDS)
    license = license_image_clean(data=png_bytes())
    outcomes = run_concurrently(*[
        lambda: billing_info_license_add(account=team, user=owner, license=license, now=timezone.now())
        for _ in range(4)])
    assert sorted("locked" if isinstance(o, BillingInfoLocked) else o if isinstance(o, Exception) else "stored"
                  for o in outcomes) == ["locked", "locked", "locked", "stored"]
    assert len(media()) == 1
    assert BillingInfoChange.objects.filter(account=team, field="license").count() == 1


def test_service_adds_a_missing_license_once(team, media):
    from accounts.services import billing_info_license_add

    owner = User.objects.get(email="owner@acme.example")
    BillingInfo.objects.create(account=team, **FIELDS)
    license = license_image_clean(data=png_bytes())
    billing_info_license_add(account=team, user=owner, license=license, now=utc(2026, 10, 1))
    with pytest.raises(BillingInfoLocked, match="already on file"):
        billing_info_license_add(account=team, user=owner, license=license, now=utc(2026, 10, 2))
    assert len(media()) == 1


def test_rejection_reason_is_shown_to_the_customer(client, submitted):
    submitted.verification_status = "rejected"
    submitted.rejection_reason = "The company name on the license does not match."
    submitted.save()
    page = client_for(client, "viewer@acme.example").get(INFO_URL).content.decode()
    assert "Rejected" in page
    assert "The company name on the license does not match." in page


def test_settled_bill_keeps_the_snapshot(team, submitted):
    """Statements show billing information as it was at settlement."""
    from aurora_billing.settlement import bill_settle
    from core.periods import Period

    add_price("email", "sg", "0.000300")
    add_usage(team, "sg", "email", "2026-10-05", 1000)
    bill, created = bill_settle(account=team, period=Period.parse("2026-10"), now=utc(2026, 11, 1, 8))
    assert created
    submitted.company_name = "Renamed Later Ltd"
    submitted.save()
    bill.refresh_from_db()
    assert bill.billing_info_snapshot == FIELDS


def test_accounts_are_unchanged_by_failed_uploads(client, team, media):
    before = list(Account.objects.values())
    client_for(client, "owner@acme.example")
    post_info(client, b"GIF89a" + b"\0" * 100)
    assert list(Account.objects.values()) == before

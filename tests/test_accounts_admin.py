"""Django admin for accounts: email-based users, and staff edits of billing
information recorded in the history (who, when, field, old → new)."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import BillingInfo, BillingInfoChange, User
from aurora_billing.staff import staff_groups_sync
from tests.test_billing_info import FIELDS, media, post_info  # noqa: F401 - fixture
from tests.test_license_upload import jpeg_bytes, png_bytes


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client_(db):
    client = Client()
    staff = User.objects.create_superuser("admin@aurora.example", "admin-pass-123")
    client.force_login(staff)
    client.staff = staff
    return client


@pytest.fixture
def info(client, acme, media):  # noqa: F811
    client.force_login(User.objects.get(email="owner@acme.example"))
    assert post_info(client, png_bytes((100, 60))).status_code == 302
    client.logout()
    return BillingInfo.objects.get(account=acme)


def change_data(info, **overrides):
    data = {
        "contact_name": info.contact_name, "company_name": info.company_name, "website": info.website,
        "company_address": info.company_address, "detailed_address": info.detailed_address,
        "verification_status": info.verification_status, "rejection_reason": info.rejection_reason,
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("model", ["user", "account", "membership", "billinginfo", "billinginfochange"])
def test_changelists_render(admin_client_, info, model):
    assert admin_client_.get(reverse(f"admin:accounts_{model}_changelist")).status_code == 200


def test_change_pages_render(admin_client_, info, acme):
    owner = User.objects.get(email="owner@acme.example")
    assert admin_client_.get(reverse("admin:accounts_user_change", args=[owner.pk])).status_code == 200
    assert admin_client_.get(reverse("admin:accounts_account_change", args=[acme.pk])).status_code == 200
    page = admin_client_.get(reverse("admin:accounts_billinginfo_change", args=[info.pk])).content.decode()
    license_url = reverse("admin:accounts_billinginfo_license", args=[info.pk])
    assert f'<img src="{license_url}?v={info.license_sha256[:12]}"' in page
    assert "image/png" in page and info.license_sha256 in page
    assert "星辰科技有限公司" in page  # the history: console submission, old → new
    assert "console" in page


def test_staff_edit_is_recorded_and_the_rejection_is_shown_to_the_customer(admin_client_, client, info):
    url = reverse("admin:accounts_billinginfo_change", args=[info.pk])
    response = admin_client_.post(url, change_data(
        info, company_name="星辰科技（上海）有限公司", verification_status="rejected",
        rejection_reason="The license is blurred; upload a sharper scan.",
    ))
    assert response.status_code == 302
    info.refresh_from_db()
    assert info.company_name == "星辰科技（上海）有限公司"
    assert info.verification_status == "rejected"
    changes = {c.field: c for c in BillingInfoChange.objects.filter(account=info.account, source="admin")}
    assert set(changes) == {"company_name", "verification_status", "rejection_reason"}
    assert changes["company_name"].old_value == "星辰科技有限公司"
    assert changes["company_name"].new_value == "星辰科技（上海）有限公司"
    assert changes["company_name"].changed_by == admin_client_.staff
    assert changes["verification_status"].old_value == "pending"
    assert changes["verification_status"].new_value == "rejected"

    admin_client_.logout()
    client.force_login(User.objects.get(email="owner@acme.example"))
    page = client.get("/billing/info/").content.decode()
    assert "Rejected" in page and "The license is blurred; upload a sharper scan." in page
    assert "星辰科技（上海）有限公司" in page


def test_unchanged_save_records_nothing(admin_client_, info):
    before = BillingInfoChange.objects.count()
    url = reverse("admin:accounts_billinginfo_change", args=[info.pk])
    assert admin_client_.post(url, change_data(info)).status_code == 302
    assert BillingInfoChange.objects.count() == before


def test_rejection_needs_a_reason(admin_client_, info):
    before = BillingInfoChange.objects.count()
    url = reverse("admin:accounts_billinginfo_change", args=[info.pk])
    response = admin_client_.post(url, change_data(info, verification_status="rejected", rejection_reason=""))
    assert response.status_code == 200
    assert b"Give the reason for the rejection" in response.content
    info.refresh_from_db()
    assert info.verification_status == "pending"
    assert BillingInfoChange.objects.count() == before


def test_verifying_clears_an_old_rejection_reason(admin_client_, info):
    info.verification_status, info.rejection_reason = "rejected", "Blurred."
    info.save()
    url = reverse("admin:accounts_billinginfo_change", args=[info.pk])
    assert admin_client_.post(url, change_data(info, verification_status="verified")).status_code == 302
    info.refresh_from_db()
    assert (info.verification_status, info.rejection_reason) == ("verified", "")


def test_staff_replace_the_license_and_the_old_file_goes(
    admin_client_, info, media, django_capture_on_commit_callbacks  # noqa: F811
):
    old_name = info.license_file.name
    old_sha = info.license_sha256
    url = reverse("admin:accounts_billinginfo_change", args=[info.pk])
    data = change_data(info, license_upload=SimpleUploadedFile("new.jpg", jpeg_bytes(), "image/jpeg"))
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client_.post(url, data).status_code == 302
    info.refresh_from_db()
    assert info.license_content_type == "image/jpeg"
    assert media() == [info.license_file.name]
    assert info.license_file.name != old_name
    change = BillingInfoChange.objects.get(account=info.account, source="admin", field="license")
    assert old_sha in change.old_value and info.license_sha256 in change.new_value


def test_staff_upload_is_checked_like_the_customers(admin_client_, info, media):  # noqa: F811
    before = (media(), BillingInfoChange.objects.count())
    url = reverse("admin:accounts_billinginfo_change", args=[info.pk])
    data = change_data(info, license_upload=SimpleUploadedFile("x.png", b"GIF89a" + b"\0" * 50, "image/png"))
    response = admin_client_.post(url, data)
    assert response.status_code == 200
    assert b"is a GIF image, not a JPEG or PNG" in response.content
    assert (media(), BillingInfoChange.objects.count()) == before


def test_staff_add_billing_information_for_an_account(admin_client_, acme, media):  # noqa: F811
    data = {**FIELDS, "account": acme.pk, "verification_status": "verified", "rejection_reason": "",
            "license_upload": SimpleUploadedFile("l.png", png_bytes(), "image/png")}
    response = admin_client_.post(reverse("admin:accounts_billinginfo_add"), data)
    assert response.status_code == 302
    info = BillingInfo.objects.get(account=acme)
    assert info.verification_status == "verified"
    assert len(media()) == 1
    fields = set(BillingInfoChange.objects.filter(account=acme, source="admin").values_list("field", flat=True))
    assert fields == {*FIELDS, "verification_status", "license"}
    # a second one for the same account is refused
    data["license_upload"] = SimpleUploadedFile("l.png", png_bytes(), "image/png")
    response = admin_client_.post(reverse("admin:accounts_billinginfo_add"), data)
    assert response.status_code == 200
    assert BillingInfo.objects.filter(account=acme).count() == 1
    assert len(media()) == 1


def test_history_is_read_only_in_admin(admin_client_, info):
    change = BillingInfoChange.objects.filter(account=info.account).first()
    assert admin_client_.get(reverse("admin:accounts_billinginfochange_add")).status_code == 403
    page = admin_client_.get(reverse("admin:accounts_billinginfochange_change", args=[change.pk]))
    assert page.status_code == 200
    assert b'name="new_value"' not in page.content
    response = admin_client_.post(reverse("admin:accounts_billinginfochange_delete", args=[change.pk]),
                                  {"post": "yes"})
    assert response.status_code == 403
    assert BillingInfoChange.objects.filter(pk=change.pk).exists()


def test_support_staff_can_review_and_see_the_license(client, info):
    staff_groups_sync()
    support = User.objects.create_user("support@aurora.example", "support-pass-1", is_staff=True)
    support.groups.add(Group.objects.get(name="support"))
    client.force_login(support)
    assert client.get(reverse("admin:accounts_billinginfo_license", args=[info.pk])).status_code == 200
    url = reverse("admin:accounts_billinginfo_change", args=[info.pk])
    assert client.post(url, change_data(info, verification_status="verified")).status_code == 302
    assert BillingInfoChange.objects.get(field="verification_status").changed_by == support


def test_admin_creates_users_by_email(admin_client_):
    response = admin_client_.post(reverse("admin:accounts_user_add"), {
        "email": "New.Person@Example.COM", "full_name": "New Person",
        "password1": "a-long-pass-phrase-1", "password2": "a-long-pass-phrase-1",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    user = User.objects.get(email="new.person@example.com")
    assert user.check_password("a-long-pass-phrase-1")
    response = admin_client_.post(reverse("admin:accounts_user_add"), {
        "email": "NEW.person@example.com", "password1": "a-long-pass-phrase-1",
        "password2": "a-long-pass-phrase-1",
    })
    assert response.status_code == 200
    assert b"A user with this email address already exists." in response.content
    assert User.objects.filter(email__iexact="new.person@example.com").count() == 1


def test_admin_changes_a_users_email(admin_client_, acme):
    owner = User.objects.get(email="owner@acme.example")
    url = reverse("admin:accounts_user_change", args=[owner.pk])
    membership = owner.memberships.get()
    data = {
        "email": "Olivia@Acme.Example", "full_name": "Olivia", "is_active": "on",
        "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
        "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": str(membership.pk), "memberships-0-user": str(owner.pk),
        "memberships-0-account": str(acme.pk), "memberships-0-role": "owner",
    }
    response = admin_client_.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    owner.refresh_from_db()
    assert owner.email == "olivia@acme.example"

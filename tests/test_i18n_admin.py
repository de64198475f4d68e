"""Django admin, license-upload refusals and payment receipts in Simplified
Chinese (issue #16, docs/i18n.md): our own admin labels, actions, column
headers and messages follow the staff member's language."""
from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import translation

from accounts.models import BillingInfo, User
from accounts.uploads import describe_content, license_image_clean
from tests.support import PASSWORD
from tests.test_license_upload import memory_bomb, png_flat
from tests.test_repay import checkout, open_repay, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_zh(db):
    User.objects.create_superuser("admin@aurora.example", PASSWORD)
    User.objects.filter(email="admin@aurora.example").update(language="zh-hans")
    client = Client()
    client.force_login(User.objects.get(email="admin@aurora.example"))
    return client


def test_admin_bill_changelist_in_chinese(staff_zh, owner):
    html = staff_zh.get("/admin/invoices/bill/").content.decode()
    assert "费用中心管理" in html  # site header
    assert ">账期<" in html or "账期</a>" in html  # the period column
    assert "对账单" in html  # the statement column
    assert "全部账户" in html  # the export form


def test_admin_billing_info_and_account_actions_in_chinese(staff_zh, acme):
    BillingInfo.objects.create(account=acme, contact_name="王芳", company_name="Acme", website="https://acme.example",
                               company_address="SG", detailed_address="1 Main St")
    html = staff_zh.get("/admin/accounts/billinginfo/").content.decode()
    assert "账单信息" in html and "审核状态" in html and ">待审核<" in html
    html = staff_zh.get("/admin/accounts/account/").content.decode()
    assert "立即出账所有到期账期（补出账）" in html and "出账指定账期…" in html


def test_admin_settle_period_form_in_chinese(staff_zh, acme):
    response = staff_zh.post("/admin/accounts/account/", {"action": "settle_period", "_selected_action": [acme.pk]})
    html = response.content.decode()
    assert response.status_code == 200
    assert "为所选账户出账一个账期" in html and 'value="出账"' in html


def test_rare_license_refusals_in_chinese(settings):
    with translation.override("zh-hans"):
        assert describe_content(b"%PDF-1.7") == "PDF 文档"
        with pytest.raises(ValidationError) as info:
            license_image_clean(data=memory_bomb())
        assert "内存" in info.value.messages[0] and "6324×6324" in info.value.messages[0]
        with pytest.raises(ValidationError) as info:
            license_image_clean(data=png_flat(4000, 3000, color_type=2))
        assert "压缩" in info.value.messages[0] and ":1" in info.value.messages[0]


def test_receipt_lines_name_services_in_the_recipient_language(owner, acme, settings,
                                                                django_capture_on_commit_callbacks):
    settings.PAYMENTS_SANDBOX = True
    User.objects.filter(email="owner@acme.example").update(language="zh-hans")
    with django_capture_on_commit_callbacks(execute=True):
        checkout(owner, submit(owner, open_repay(owner)), "approve")
    body = mail.outbox[-1].body
    assert "- 2026-10 邮件推送, SG: 0.40" in body and "数据流量" in body


def test_admin_times_in_chinese_read_like_the_console(staff_zh, acme):
    """UTC+8 and ``Y-m-d H:i`` (aurora_billing/formats/zh_Hans), not Django's 2026年11月21日 02:30."""
    from core.audit import audit_record
    from tests.support import utc

    audit_record(action="test.event", summary="an event", account=acme, at=utc(2026, 11, 20, 18, 30))
    html = staff_zh.get("/admin/core/auditevent/").content.decode()
    assert "2026-11-21 02:30" in html and "2026年11月21日" not in html


def test_sign_in_lockout_admin_in_chinese(staff_zh):
    """django-axes ships no zh-Hans catalog; the project catalog names its
    models and columns (docs/i18n.md)."""
    from axes.models import AccessAttempt

    AccessAttempt.objects.create(username="owner@acme.example", ip_address="203.0.113.9", user_agent="test",
                                 failures_since_start=3, get_data="", post_data="", http_accept="*/*",
                                 path_info="/accounts/login/")
    html = staff_zh.get("/admin/axes/accessattempt/").content.decode()
    assert "访问尝试" in html and "IP 地址" in html and "登录失败次数" in html
    assert "访问日志" in staff_zh.get("/admin/axes/accesslog/").content.decode()

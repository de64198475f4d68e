"""PDF statements: numbering, rendered once and stored, the numbers in the
PDF text, Chinese billing information, and who may download them."""
from __future__ import annotations

import hashlib
import io
import re
from decimal import Decimal

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from accounts.models import BillingInfo, Membership, User
from aurora_billing.settlement import bill_settle
from core.periods import Period
from invoices.models import Bill, Statement, StatementCounter
from invoices.statements import statement_issue
from payments.services import topup_record
from tests.support import PASSWORD, add_pack, add_price, add_usage, utc

pytestmark = pytest.mark.django_db

SETTLED_AT = utc(2026, 11, 1, 7)
IN_NOVEMBER = utc(2026, 11, 20, 4)


def use_private_media(settings, directory):
    """Stored files (statement PDFs) go to ``directory`` for the test."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(directory)}}}
    return directory


def settle_worked_example(acme) -> Bill:
    """billing-rules §8 (email results split), with Chinese billing information
    frozen at settlement."""
    BillingInfo.objects.create(account=acme, contact_name="王芳", company_name="星辰科技有限公司",
                               website="https://xingchen.example", company_address="上海市浦东新区世纪大道100号",
                               detailed_address="环球金融中心 25 楼")
    add_price("email", "sg", "0.000300")
    add_price("data_flow", "sg", "0.30")
    topup_record(account=acme, amount=Decimal("5.00"), reference="t1", at=utc(2026, 9, 1))
    add_pack(acme, "sg", "A", 10_000, "2026-09-01", "2026-10-16")
    add_pack(acme, "sg", "B", 50_000, "2026-10-10", "2028-10-10")
    add_usage(acme, "sg", "email", "2026-10-05", 8_000)
    add_usage(acme, "sg", "email", "2026-10-12", 30_000, result="delivered")
    add_usage(acme, "sg", "email", "2026-10-20", 39_000, result="delivered")
    add_usage(acme, "sg", "email", "2026-10-20", 600, result="soft_bounce")
    add_usage(acme, "sg", "email", "2026-10-20", 400, result="not_exist")
    add_usage(acme, "sg", "data_flow", "2026-10-15", "20")
    bill, _ = bill_settle(account=acme, period=Period(2026, 10), now=SETTLED_AT)
    return bill


@pytest.fixture
def media(settings, tmp_path):
    return use_private_media(settings, tmp_path)


@pytest.fixture
def worked_bill(acme, media):
    return settle_worked_example(acme)


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_statement_pdf_carries_the_numbers(worked_bill):
    statement = statement_issue(bill=worked_bill, now=utc(2026, 11, 5, 2))
    data = statement.pdf.read()
    assert data.startswith(b"%PDF-")
    assert hashlib.sha256(data).hexdigest() == statement.sha256
    assert len(PdfReader(io.BytesIO(data)).pages) == 1
    text = pdf_text(data)
    flat = " ".join(text.split())
    assert statement.number == "AUR-2026-000001"
    for expected in (
        "AUR-2026-000001", "2026-11-05", "2026-10 (2026-10-01 to 2026-10-31, UTC+8)", "acme",
        # billing information as it stood at settlement, in Chinese
        "星辰科技有限公司", "王芳", "上海市浦东新区世纪大道100号", "环球金融中心 25 楼",
        # email line: usage, deducted, billable, unit price, amount, paid, balance, status
        "Email SG sg 78,000 60,000 18,000 0.000300 5.40 5.00 0.40 Overdrawn",
        "Data Flow SG sg 20 15.6 4.4 0.300000 1.32 0.00 1.32 Overdrawn",
        "Total (USD) 6.72 5.00 1.72",
        "1.72 USD",
        # email results: delivered, soft bounce, format error, not exist, reject, junk mail, total
        "SG sg 77,000 600 0 400 0 0 78,000",
        "How to pay", "http://127.0.0.1:8000/billing/repay/",
    ):
        assert expected in flat, expected


def test_snapshot_not_current_billing_info(worked_bill):
    BillingInfo.objects.filter(account=worked_bill.account).update(company_name="Renamed Later Ltd")
    text = pdf_text(statement_issue(bill=worked_bill, now=IN_NOVEMBER).pdf.read())
    assert "星辰科技有限公司" in text and "Renamed Later" not in text


def test_issued_once_numbers_sequential_per_year(worked_bill, make_account):
    first = statement_issue(bill=worked_bill, now=IN_NOVEMBER)
    again = statement_issue(bill=worked_bill, now=utc(2026, 12, 1))
    assert again.pk == first.pk and again.number == "AUR-2026-000001"
    others = []
    for code, when in (("b", utc(2026, 12, 31, 15, 59)), ("c", utc(2026, 12, 31, 16, 0))):
        account = make_account(code=code, name=code, users=())
        add_usage(account, "sg", "email", "2026-10-03", 10)
        bill, _ = bill_settle(account=account, period=Period(2026, 10), now=SETTLED_AT)
        others.append(statement_issue(bill=bill, now=when))
    # 2026-12-31 23:59 UTC+8 is still 2026; 2027-01-01 00:00 UTC+8 starts 2027's numbers.
    assert [s.number for s in others] == ["AUR-2026-000002", "AUR-2027-000001"]
    assert dict(StatementCounter.objects.values_list("year", "last_number")) == {2026: 2, 2027: 1}
    assert Statement.objects.count() == 3


def test_a_failed_render_uses_no_number_and_stores_nothing(worked_bill, media, monkeypatch):
    import invoices.statements

    def broken(**kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(invoices.statements, "statement_pdf_render", broken)
    with pytest.raises(RuntimeError):
        statement_issue(bill=worked_bill, now=IN_NOVEMBER)
    monkeypatch.undo()
    assert not Statement.objects.exists()
    assert not list(media.rglob("*.pdf"))
    assert statement_issue(bill=worked_bill, now=IN_NOVEMBER).number == "AUR-2026-000001"


# --- download -------------------------------------------------------------------

@pytest.fixture
def owner(worked_bill, client):
    client.force_login(User.objects.get(email="owner@acme.example"))
    return client


def test_download_is_the_stored_file(owner, worked_bill):
    url = reverse("billing:statement_pdf", args=["2026-10"])
    assert url == "/billing/statements/2026-10.pdf"
    with time_machine.travel(IN_NOVEMBER, tick=False):
        response = owner.get(url)
        second = owner.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="aurora-statement-acme-2026-10.pdf"'
    data = b"".join(response.streaming_content)
    statement = Statement.objects.get(bill=worked_bill)
    assert data == statement.pdf.read()
    assert b"".join(second.streaming_content) == data
    assert Statement.objects.count() == 1 and statement.issued_at == IN_NOVEMBER


def test_period_not_settled_is_404_with_a_reason(owner):
    with time_machine.travel(IN_NOVEMBER, tick=False):
        response = owner.get(reverse("billing:statement_pdf", args=["2026-11"]))
        older = owner.get(reverse("billing:statement_pdf", args=["2026-08"]))
    assert response.status_code == 404
    assert "2026-11 is not settled yet" in response.content.decode()
    assert "2026-12-01 15:00 UTC+8" in response.content.decode()
    assert older.status_code == 404
    assert "no bill for that period" in older.content.decode()
    assert not Statement.objects.exists()


@pytest.mark.parametrize("period", ["2026-13", "oct-2026", "2026-1"])
def test_malformed_period_is_400(owner, period):
    response = owner.get(f"/billing/statements/{period}.pdf")
    assert response.status_code == 400
    assert "Bad period" in response.content.decode()


def test_another_accounts_statement_is_404(client, worked_bill, make_account):
    make_account(code="globex", name="Globex", users=(("cfo@globex.example", "owner"),))
    client.force_login(User.objects.get(email="cfo@globex.example"))
    with time_machine.travel(IN_NOVEMBER, tick=False):
        response = client.get(reverse("billing:statement_pdf", args=["2026-10"]))
    assert response.status_code == 404
    assert not Statement.objects.exists()


def test_viewer_may_not_download(client, worked_bill):
    viewer = User.objects.create_user("viewer@acme.example", PASSWORD)
    Membership.objects.create(user=viewer, account=worked_bill.account, role="viewer")
    client.force_login(viewer)
    assert client.get(reverse("billing:statement_pdf", args=["2026-10"])).status_code == 403


def test_staff_download_in_admin(client, worked_bill):
    statement = statement_issue(bill=worked_bill, now=IN_NOVEMBER)
    client.force_login(User.objects.create_superuser("admin@aurora.example", PASSWORD))
    listing = client.get(reverse("admin:invoices_statement_changelist")).content.decode()
    url = reverse("admin:invoices_statement_pdf", args=[statement.pk])
    assert url in listing
    response = client.get(url)
    assert b"".join(response.streaming_content) == statement.pdf.read()
    bills = client.get(reverse("admin:invoices_bill_change", args=[worked_bill.pk])).content.decode()
    assert url in bills and re.search(r"5\.40", bills)


def test_admin_is_read_only(client, worked_bill):
    client.force_login(User.objects.create_superuser("admin@aurora.example", PASSWORD))
    assert client.get(reverse("admin:invoices_bill_add")).status_code == 403
    response = client.post(reverse("admin:invoices_bill_delete", args=[worked_bill.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Bill.objects.filter(pk=worked_bill.pk).exists()


# --- after a repayment: billed figures kept, balances as of the rendering -------

def repay_in_full(bill: Bill, *, now) -> None:
    """Pay every overdrawn line of ``bill`` through the sandbox provider."""
    from payments.services import FrozenLine, repayment_create, sandbox_checkout_decide

    frozen = [FrozenLine(line_id=line.pk, balance=line.balance) for line in bill.lines.filter(status="Overdrawn")]
    payment, _ = repayment_create(account=bill.account, frozen=frozen, method="sandbox",
                                  idempotency_key=f"repay-{bill.pk}", user=None, now=now)
    sandbox_checkout_decide(payment=payment, approve=True, now=now)


@pytest.fixture
def sandbox(settings):
    settings.PAYMENTS_SANDBOX = True


def test_download_after_repayment_shows_payments_since_issue(owner, worked_bill, sandbox):
    statement = statement_issue(bill=worked_bill, now=utc(2026, 11, 5, 2))
    archived = statement.pdf.read()
    repay_in_full(worked_bill, now=utc(2026, 11, 6, 1, 30))
    with time_machine.travel(IN_NOVEMBER, tick=False):  # 2026-11-20 12:00 UTC+8
        response = owner.get(reverse("billing:statement_pdf", args=["2026-10"]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'inline; filename="aurora-statement-acme-2026-10.pdf"'
    flat = " ".join(pdf_text(b"".join(response.streaming_content)).split())
    for expected in (
        "AUR-2026-000001", "Issue date 2026-11-05", "Balances as of 2026-11-20 12:00 UTC+8",
        # billed figures unchanged; paid, balance and status as of the rendering
        "Email SG sg 78,000 60,000 18,000 0.000300 5.40 5.40 0.00 Paid",
        "Data Flow SG sg 20 15.6 4.4 0.300000 1.32 1.32 0.00 Paid",
        "Total (USD) 6.72 6.72 0.00",
        "AMOUNT DUE NOW 0.00 USD",  # the heading is set in capitals
        "Payments since issue",
        "Email SG sg 5.00 0.40 5.40 0.00",
        "Data Flow SG sg 0.00 1.32 1.32 0.00",
        "Paid since issue (USD) 1.72",
        "At issue on 2026-11-05 10:00 UTC+8 the amount due was 1.72 USD",
        "This statement is settled in full",
    ):
        assert expected in flat, expected
    assert "Overdrawn" not in flat
    # the issue-time rendering stays archived, unchanged, with its checksum
    statement.refresh_from_db()
    assert statement.pdf.read() == archived
    assert hashlib.sha256(archived).hexdigest() == statement.sha256
    old = " ".join(pdf_text(archived).split())
    assert "Balances as of 2026-11-05 10:00 UTC+8" in old and "1.72 USD" in old and "Payments since issue" not in old


def test_issue_records_figures_and_checksum_in_the_audit_log(worked_bill):
    from core.models import AuditEvent

    statement = statement_issue(bill=worked_bill, now=utc(2026, 11, 5, 2))
    lines = {line.pk: line for line in worked_bill.lines.all()}
    assert statement.issued_lines == {
        str(pk): {"paid": str(line.paid), "balance": str(line.balance), "status": line.status}
        for pk, line in lines.items()}
    event = AuditEvent.objects.get(action="statement.issued")
    assert event.object_id == str(statement.pk) and event.account == worked_bill.account
    assert event.data["sha256"] == statement.sha256 and event.data["number"] == "AUR-2026-000001"
    assert event.data["amount_due"] == "1.72"
    assert statement.sha256 in event.summary


def test_staff_see_the_checksum_and_its_verification(client, worked_bill):
    statement = statement_issue(bill=worked_bill, now=IN_NOVEMBER)
    client.force_login(User.objects.create_superuser("admin@aurora.example", PASSWORD))
    page = client.get(reverse("admin:invoices_statement_change", args=[statement.pk])).content.decode()
    assert statement.sha256 in page
    assert "matches the recorded SHA-256" in page
    listing = client.get(reverse("admin:invoices_statement_changelist")).content.decode()
    assert statement.sha256[:12] in listing
    with statement.pdf.open("wb") as f:  # the archived file altered behind the application's back
        f.write(b"%PDF-1.7 altered")
    page = client.get(reverse("admin:invoices_statement_change", args=[statement.pk])).content.decode()
    assert "does NOT match" in page
    assert hashlib.sha256(b"%PDF-1.7 altered").hexdigest() in page


# --- what WeasyPrint may fetch: the project's static files only ------------------

HOSTILE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="http://127.0.0.1:9/x.css">
<link rel="stylesheet" href="file:///etc/passwd">
<link rel="attachment" href="file:///etc/passwd">
<link rel="stylesheet" href="/static/css/statement-test.css">
</head><body><p>Statement body</p><img src="file:///etc/hostname" alt="">
<img src="/static/../../../../etc/passwd" alt=""></body></html>"""


@pytest.fixture
def static_dir(settings, tmp_path):
    directory = tmp_path / "static"
    (directory / "css").mkdir(parents=True)
    (directory / "css" / "statement-test.css").write_text('body::after { content: "Served from static"; }')
    settings.STATICFILES_DIRS = [directory]
    return directory


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "http://127.0.0.1:9/x",
    "https://example.com/static/css/statement-test.css",  # another origin, even with a static path
    "http://127.0.0.1:8000/static/../manage.py",
    "http://127.0.0.1:8000/static/%2e%2e/manage.py",
    "http://127.0.0.1:8000/static/css/missing.css",
    "http://127.0.0.1:8000/billing/repay/",
    "ftp://127.0.0.1/x",
])
def test_the_pdf_fetcher_refuses_everything_but_static_files(static_dir, url, caplog):
    from invoices.pdf import FetchRefused, static_files_fetcher

    with pytest.raises(FetchRefused):
        static_files_fetcher()(url)
    assert f"refused to fetch {url}" in caplog.text


def test_the_pdf_fetcher_serves_a_static_file(static_dir):
    from invoices.pdf import static_files_fetcher

    response = static_files_fetcher()("http://127.0.0.1:8000/static/css/statement-test.css")
    assert response.read() == b'body::after { content: "Served from static"; }'
    assert response.content_type == "text/css"


def test_a_pdf_naming_local_files_and_urls_renders_without_them(static_dir, monkeypatch):
    """Rendered through the statement renderer: nothing but the static CSS is
    read, the PDF still comes out, and no local file ends up inside it."""
    from invoices.pdf import html_pdf_render

    opened = []
    real_open = open

    def watching_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", watching_open)
    data = html_pdf_render(html=HOSTILE, identifier="AUR-TEST")
    monkeypatch.undo()
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert "Statement body" in text and "Served from static" in text
    assert "root:" not in text and b"root:x:0:0" not in data
    assert not PdfReader(io.BytesIO(data)).attachments
    assert not [f for f in opened if f.startswith("/etc/")], opened


def test_statements_issued_before_issued_lines_get_the_figures_at_settlement(worked_bill, sandbox):
    """Migration 0003's backfill: the bill's funds spread in line order, as
    settlement applied them, whatever was repaid since."""
    import importlib

    from django.apps import apps

    backfill = importlib.import_module("invoices.migrations.0003_statement_issued_lines").issued_lines_backfill
    repay_in_full(worked_bill, now=utc(2026, 11, 6))
    old = Statement.objects.create(bill=worked_bill, number="AUR-2026-000099", issued_at=utc(2026, 11, 5, 2))
    backfill(apps, None)
    email, data_flow = worked_bill.lines.order_by("position")
    old.refresh_from_db()
    assert old.issued_lines == {
        str(email.pk): {"paid": "5.00", "balance": "0.40", "status": "Overdrawn"},
        str(data_flow.pk): {"paid": "0.00", "balance": "1.32", "status": "Overdrawn"},
    }


def test_statement_numbers_follow_the_periods_whichever_is_downloaded_first(acme):
    """October's PDF opened before September's: September still gets the lower number."""
    add_price("email", "sg", "0.000300")
    bills = {}
    for month in (9, 10, 11):
        add_usage(acme, "sg", "email", f"2026-{month:02d}-03", 1000)
        period = Period(2026, month)
        bills[month], _ = bill_settle(account=acme, period=period, now=period.bill_time)
    client = Client()
    client.force_login(acme.memberships.get().user)
    assert client.get("/billing/statements/2026-10.pdf").status_code == 200
    numbers = dict(Statement.objects.values_list("bill__period", "number"))
    assert numbers == {"2026-09": "AUR-2026-000001", "2026-10": "AUR-2026-000002"}
    assert statement_issue(bill=bills[11], now=utc(2026, 12, 5, 2)).number == "AUR-2026-000003"

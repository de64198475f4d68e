"""Tax invoices (docs/tax-invoices.md): customers request them for paid
bills on /billing/invoices/, staff issue or reject them in admin."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import BillingInfo, Membership, User
from aurora_billing.settlement import bill_settle
from core.models import AuditEvent
from core.periods import Period
from invoices.models import InvoiceRequest, InvoiceRequestBill
from invoices.tax_invoices import InvoiceRequestError, invoice_request_create, uscc_valid
from payments.services import topup_record
from tests.support import PASSWORD, add_price, add_usage, failures, run_concurrently, utc

pytestmark = pytest.mark.django_db

OCT, NOV = Period(2026, 10), Period(2026, 11)
USCC = "91350100M000100Y43"  # a unified social credit code with a valid check character
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def paid_october(account) -> None:
    """October settled and paid in full by funds (7.92 USD); November overdrawn (3.00, 2.08 paid)."""
    add_price("email", "sg", "0.000300")
    add_price("data_flow", "sg", "0.30")
    topup_record(account=account, amount=Decimal("10.00"), reference="t1", at=utc(2026, 10, 1))
    add_usage(account, "sg", "email", "2026-10-05", 8_000)
    add_usage(account, "sg", "data_flow", "2026-10-15", "20")
    bill_settle(account=account, period=OCT, now=OCT.bill_time)
    add_usage(account, "sg", "data_flow", "2026-11-02", "10")
    bill_settle(account=account, period=NOV, now=NOV.bill_time)
    BillingInfo.objects.create(account=account, contact_name="Li Lei", company_name="Acme Ltd",
                               website="https://acme.example", company_address="1 Main St",
                               detailed_address="Floor 2")


def signed_in(email="owner@acme.example") -> Client:
    client = Client()
    client.force_login(User.objects.get(email=email))
    return client


def request_form(bill_ids, **fields) -> dict:
    return {"bills": bill_ids, "kind": "general_vat", "title": "Acme Ltd", "taxpayer_id": USCC,
            "address_phone": "", "bank_account": "", "email": "finance@acme.example", **fields}


@pytest.fixture
def paid(acme):
    paid_october(acme)
    return acme


def october(account):
    return account.bills.get(period="2026-10")


def test_an_owner_requests_an_invoice_for_a_paid_bill(paid):
    client = signed_in()
    page = client.get("/billing/invoices/").content.decode()
    assert "2026-10 · 7.92 USD" in page and "2026-11" not in page  # November is overdrawn
    response = client.post("/billing/invoices/", request_form([october(paid).pk]))
    assert response.status_code == 302 and response["Location"] == "/billing/invoices/"
    request = InvoiceRequest.objects.get()
    assert (request.amount, request.currency, request.status) == (Decimal("7.92"), "USD", "requested")
    assert request.billing_info_snapshot["company_name"] == "Acme Ltd"
    assert AuditEvent.objects.filter(action="tax_invoice.requested", account=paid).count() == 1
    page = client.get("/billing/invoices/").content.decode()
    assert "Requested" in page and "No paid bill waits for an invoice" in page


def test_the_request_freezes_the_billing_information(paid):
    signed_in().post("/billing/invoices/", request_form([october(paid).pk]))
    BillingInfo.objects.filter(account=paid).update(company_name="Acme Holdings")
    assert InvoiceRequest.objects.get().billing_info_snapshot["company_name"] == "Acme Ltd"


@pytest.mark.parametrize(("fields", "error"), [
    ({"taxpayer_id": "91350100M000100Y44"}, "unified social credit code"),
    ({"taxpayer_id": ""}, "unified social credit code"),
    ({"kind": "special_vat"}, "registered address and phone"),
    ({"kind": "special_vat", "address_phone": "1 Main St 010-1234"}, "bank name and account number"),
    ({"kind": "commercial", "taxpayer_id": ""}, "buyer&#x27;s address"),
    ({"title": "  "}, "This field is required"),
])
def test_incomplete_invoice_details_are_refused(paid, fields, error):
    response = signed_in().post("/billing/invoices/", request_form([october(paid).pk], **fields))
    assert response.status_code == 400 and error in response.content.decode()
    assert not InvoiceRequest.objects.exists()


def test_an_overdrawn_bill_cannot_be_invoiced(paid):
    november = paid.bills.get(period="2026-11")
    response = signed_in().post("/billing/invoices/", request_form([november.pk]))
    assert response.status_code == 400
    assert not InvoiceRequest.objects.exists()
    with pytest.raises(InvoiceRequestError, match="cannot be invoiced.*2026-11"):
        invoice_request_create(account=paid, user=None, bill_ids=[november.pk], kind="general_vat",
                               title="Acme", taxpayer_id=USCC, email="a@acme.example", now=NOV.bill_time)


def test_a_bill_is_invoiced_once(paid):
    client = signed_in()
    client.post("/billing/invoices/", request_form([october(paid).pk]))
    response = client.post("/billing/invoices/", request_form([october(paid).pk]))
    assert response.status_code == 400
    assert InvoiceRequest.objects.count() == 1
    with pytest.raises(InvoiceRequestError, match="already on an invoice request"):
        invoice_request_create(account=paid, user=None, bill_ids=[october(paid).pk], kind="general_vat",
                               title="Acme", taxpayer_id=USCC, email="a@acme.example", now=NOV.bill_time)


def test_a_viewer_sees_requests_but_cannot_request(paid):
    viewer = User.objects.create_user("viewer@acme.example", PASSWORD)
    Membership.objects.create(user=viewer, account=paid, role="viewer")
    client = signed_in("viewer@acme.example")
    page = client.get("/billing/invoices/")
    assert page.status_code == 200 and "Request an invoice" not in page.content.decode()
    assert client.post("/billing/invoices/", request_form([october(paid).pk])).status_code == 403
    assert not InvoiceRequest.objects.exists()


def admin_decide(request, **fields):
    staff = User.objects.filter(email="staff@aurora.example").first() or User.objects.create_superuser(
        "staff@aurora.example", PASSWORD)
    client = Client()
    client.force_login(staff)
    data = {"decision": "", "invoice_number": "", "invoice_date": "", "rejected_reason": "",
            "bills-TOTAL_FORMS": "1", "bills-INITIAL_FORMS": "1", "bills-MIN_NUM_FORMS": "0",
            "bills-MAX_NUM_FORMS": "1000", "bills-0-id": str(request.bills.get().pk),
            "bills-0-request": str(request.pk), **fields}
    return client.post(f"/admin/invoices/invoicerequest/{request.pk}/change/", data)


def test_staff_issue_the_invoice_and_the_customer_downloads_it(paid, django_capture_on_commit_callbacks):
    signed_in().post("/billing/invoices/", request_form([october(paid).pk]))
    request = InvoiceRequest.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_decide(request, decision="issue", invoice_number="04400123", invoice_date="2026-11-20",
                                upload=SimpleUploadedFile("fapiao.pdf", PDF, content_type="application/pdf"))
    assert response.status_code == 302, response.content.decode()[:2000]
    request.refresh_from_db()
    assert (request.status, request.invoice_number) == ("issued", "04400123")
    [email] = mail.outbox
    assert email.to[0] == "finance@acme.example" and "owner@acme.example" in email.to
    assert "04400123" in email.subject and email.attachments[0][1] == PDF
    client = signed_in()
    assert "04400123 · 2026-11-20" in client.get("/billing/invoices/").content.decode()
    download = client.get(f"/billing/invoices/{request.public_id}/file")
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    assert AuditEvent.objects.filter(action="tax_invoice.issued").count() == 1


def test_staff_reject_with_a_reason_and_the_bills_can_be_requested_again(paid, django_capture_on_commit_callbacks):
    signed_in().post("/billing/invoices/", request_form([october(paid).pk]))
    request = InvoiceRequest.objects.get()
    assert admin_decide(request, decision="reject").status_code == 200  # a reason is required
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_decide(request, decision="reject",
                            rejected_reason="The title does not match the license").status_code == 302
    request.refresh_from_db()
    assert request.status == "rejected" and not InvoiceRequestBill.objects.filter(active=True).exists()
    assert "The title does not match the license" in mail.outbox[0].body
    page = signed_in().get("/billing/invoices/").content.decode()
    assert "The title does not match the license" in page and "2026-10 · 7.92 USD" in page
    assert signed_in().post("/billing/invoices/", request_form([october(paid).pk])).status_code == 302


@pytest.mark.parametrize(("name", "content", "error"), [
    ("fapiao.pdf", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "does not match its content"),
    ("fapiao.exe", b"MZ\x90\x00", "must be a PDF, JPG or PNG"),
    ("fapiao.pdf", b"%PDF-1.4\n" + b"0" * 100, "incomplete"),
    ("fapiao.pdf", b"%PDF-1.4\n" + b"0" * (5 * 1024 * 1024) + b"%%EOF", "larger than 5 MB"),
])
def test_a_bad_invoice_file_is_refused(paid, name, content, error):
    signed_in().post("/billing/invoices/", request_form([october(paid).pk]))
    request = InvoiceRequest.objects.get()
    response = admin_decide(request, decision="issue", invoice_number="1", invoice_date="2026-11-20",
                            upload=SimpleUploadedFile(name, content))
    assert response.status_code == 200 and error in response.content.decode()
    request.refresh_from_db()
    assert request.status == "requested" and not request.invoice_file


def test_another_accounts_invoice_is_not_found(paid, make_account, django_capture_on_commit_callbacks):
    signed_in().post("/billing/invoices/", request_form([october(paid).pk]))
    request = InvoiceRequest.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        admin_decide(request, decision="issue", invoice_number="9", invoice_date="2026-11-20",
                     upload=SimpleUploadedFile("f.pdf", PDF))
    make_account(code="beta", name="Beta", users=(("owner@beta.example", "owner"),))
    client = signed_in("owner@beta.example")
    assert client.get(f"/billing/invoices/{request.public_id}/file").status_code == 404
    assert "Acme" not in client.get("/billing/invoices/").content.decode()


def test_the_unified_social_credit_code_check_character():
    assert uscc_valid("91350100M000100Y43") and uscc_valid("91110000802100433B")
    assert not uscc_valid("91350100M000100Y44") and not uscc_valid("91350100M000100Y4")
    assert not uscc_valid("91350100I000100Y43")  # I is not in the alphabet


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_for_one_bill_invoice_it_once(postgres, paid):
    bill = october(paid)

    def attempt():
        try:
            return invoice_request_create(account=paid, user=None, bill_ids=[bill.pk], kind="general_vat",
                                          title="Acme", taxpayer_id=USCC, email="a@acme.example",
                                          now=NOV.bill_time).pk
        except InvoiceRequestError as exc:
            return str(exc)

    outcomes = run_concurrently(attempt, attempt, attempt)
    assert not failures(outcomes), failures(outcomes)
    created = [o for o in outcomes if isinstance(o, int)]
    assert len(created) == 1 and InvoiceRequest.objects.count() == 1
    assert InvoiceRequestBill.objects.filter(active=True).count() == 1

"""Tax invoices (发票): requests for fully paid bills, issued or rejected by
staff (docs/tax-invoices.md).

Rules:

- A bill can be invoiced once it is paid in full (no Overdrawn line) and
  its total is above zero; its paid amount is what the invoice covers, so an
  invoiced amount never exceeds what was paid.
- A bill is on at most one request that is not rejected: the partial unique
  constraint ``bill_invoiced_once`` is the last guard, under the account's
  row lock (two requests racing: one wins, the other is told).
- A request freezes the billing information as it stands (company name,
  addresses, the licensed name); a rejection frees its bills for a new
  request. Every step is audited and the customer is emailed.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from django.core.files.uploadedfile import UploadedFile
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from accounts.models import Account, BillingInfo
from accounts.selectors import account_recipients
from accounts.uploads import JPEG_SIGNATURE, PNG_SIGNATURE
from core.audit import audit_record
from core.money import ZERO_MONEY, round_money
from core.queue import enqueue_on_commit

from .models import Bill, InvoiceKind, InvoiceRequest, InvoiceRequestBill, InvoiceStatus, LineStatus

log = logging.getLogger("aurora.invoices")

INVOICE_FILE_MAX_BYTES = 5 * 1024 * 1024
_SIGNATURES = {b"%PDF-": "pdf", PNG_SIGNATURE: "png", JPEG_SIGNATURE: "jpg"}
_EXTENSIONS = {"pdf": {".pdf"}, "png": {".png"}, "jpg": {".jpg", ".jpeg"}}

# 统一社会信用代码 (GB 32100-2015): 18 characters, the last a check character.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{18}$")
_VAT_NUMBER_RE = re.compile(r"^[A-Z0-9][A-Z0-9 .\-]{3,19}$")


class InvoiceRequestError(ValueError):
    """The request cannot be made or decided as asked; nothing was written."""


def uscc_valid(code: str) -> bool:
    """A unified social credit code with its check character right."""
    if not _USCC_RE.match(code):
        return False
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31] == code[17]


def invoice_details_check(*, kind: str, title: str, taxpayer_id: str, address_phone: str,
                          bank_account: str) -> dict[str, str]:
    """Field → error for what an invoice of ``kind`` needs (empty: valid).
    A Chinese VAT invoice names the buyer by its unified social credit code;
    a special VAT invoice also needs the registered address, phone, bank and
    account; a commercial invoice needs the buyer's address."""
    errors: dict[str, str] = {}
    if not title.strip():
        errors["title"] = _("Enter the invoice title: the buyer's full name.")
    if kind in (InvoiceKind.GENERAL_VAT, InvoiceKind.SPECIAL_VAT):
        if not uscc_valid(taxpayer_id):
            errors["taxpayer_id"] = _("Enter the 18-character unified social credit code (统一社会信用代码); "
                                      "its last character is a check character.")
    elif taxpayer_id and not _VAT_NUMBER_RE.match(taxpayer_id):
        errors["taxpayer_id"] = _("A VAT or tax number has 4 to 20 letters, digits, spaces, dots or dashes.")
    if kind == InvoiceKind.SPECIAL_VAT:
        if not address_phone.strip():
            errors["address_phone"] = _("A special VAT invoice needs the registered address and phone.")
        if not bank_account.strip():
            errors["bank_account"] = _("A special VAT invoice needs the bank name and account number.")
    if kind == InvoiceKind.COMMERCIAL and not address_phone.strip():
        errors["address_phone"] = _("A commercial invoice needs the buyer's address.")
    return errors


# --- reads -----------------------------------------------------------------

@dataclass(frozen=True)
class InvoiceableBill:
    bill: Bill
    paid: Decimal  # what the invoice would cover (currency units)


def _invoiceable(account_id: int) -> QuerySet[Bill]:
    return (Bill.objects.filter(account_id=account_id, total_amount__gt=0)
            .annotate(overdrawn=Count("lines", filter=Q(lines__status=LineStatus.OVERDRAWN)),
                      invoiced=Count("invoice_items", filter=Q(invoice_items__active=True), distinct=True),
                      paid=Sum("lines__paid"))
            .filter(overdrawn=0, invoiced=0).order_by("-period"))


def invoiceable_bills(*, account: Account) -> list[InvoiceableBill]:
    """The account's bills that can be invoiced now, newest first (one query)."""
    return [InvoiceableBill(bill, round_money(bill.paid or ZERO_MONEY)) for bill in _invoiceable(account.pk)]


def invoice_request_list(*, account: Account) -> list[InvoiceRequest]:
    """The account's requests, newest first, with their bills (two queries)."""
    return list(InvoiceRequest.objects.filter(account=account)
                .prefetch_related("bills__bill").order_by("-requested_at", "-id"))


def invoice_request_get(*, account: Account, public_id) -> InvoiceRequest | None:
    return InvoiceRequest.objects.filter(account=account, public_id=public_id).first()


# --- writes ----------------------------------------------------------------

def invoice_request_create(*, account: Account, user, bill_ids: list[int], kind: str, title: str,
                           taxpayer_id: str = "", address_phone: str = "", bank_account: str = "",
                           email: str, now: dt.datetime) -> InvoiceRequest:
    """Request an invoice over ``bill_ids`` (the account's fully paid,
    not yet invoiced bills). Raises InvoiceRequestError with the reason."""
    if kind not in InvoiceKind.values:
        raise InvoiceRequestError(_("Choose an invoice type."))
    if not bill_ids:
        raise InvoiceRequestError(_("Choose at least one paid bill to invoice."))
    errors = invoice_details_check(kind=kind, title=title, taxpayer_id=taxpayer_id,
                                   address_phone=address_phone, bank_account=bank_account)
    if errors:
        raise InvoiceRequestError(" ".join(errors.values()))
    try:
        with transaction.atomic():
            Account.objects.select_for_update().filter(pk=account.pk).values_list("pk").first()
            bills = {b.pk: b for b in _invoiceable(account.pk).filter(pk__in=bill_ids)}
            missing = sorted(set(bill_ids) - set(bills))
            if missing:
                periods = ", ".join(Bill.objects.filter(account=account, pk__in=missing)
                                    .order_by("period").values_list("period", flat=True)) or "?"
                raise InvoiceRequestError(_("These bills cannot be invoiced (not paid in full, or already on "
                                            "an invoice request): %(periods)s.") % {"periods": periods})
            info = BillingInfo.objects.filter(account=account).first()
            if info is None:
                raise InvoiceRequestError(_("Fill in the billing information first: the invoice is issued to "
                                            "the company it names."))
            amounts = {pk: round_money(b.paid) for pk, b in bills.items()}
            request = InvoiceRequest.objects.create(
                account=account, requested_by=user, requested_at=now, kind=kind, title=title.strip(),
                taxpayer_id=taxpayer_id.strip(), address_phone=address_phone.strip(),
                bank_account=bank_account.strip(), email=email, amount=sum(amounts.values(), ZERO_MONEY),
                currency=account.currency,
                billing_info_snapshot={**info.snapshot(), "license_sha256": info.license_sha256,
                                       "verification_status": info.verification_status},
            )
            InvoiceRequestBill.objects.bulk_create(InvoiceRequestBill(request=request, bill_id=pk, amount=amount)
                                                   for pk, amount in sorted(amounts.items()))
            audit_record(action="tax_invoice.requested", actor=user, account=account, obj=request, at=now,
                         summary=f"{account.code}: {request.get_kind_display()} for "
                                 f"{', '.join(sorted(b.period for b in bills.values()))}, "
                                 f"{request.amount} {request.currency}",
                         data={"kind": kind, "amount": request.amount, "bills": sorted(amounts)})
    except IntegrityError:
        # a concurrent request took one of the bills first
        raise InvoiceRequestError(_("One of these bills was just put on another invoice request.")) from None
    log.info("tax invoice requested account=%s request=%s amount=%s", account.code, request.public_id,
             request.amount)
    return request


def invoice_file_check(upload: UploadedFile) -> str:
    """The file's kind (pdf, png, jpg) if it is what its name says and at most
    5 MB; else InvoiceRequestError."""
    if upload.size is None or upload.size > INVOICE_FILE_MAX_BYTES:
        raise InvoiceRequestError(_("The invoice file is larger than 5 MB."))
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    kind = next((k for sig, k in _SIGNATURES.items() if head.startswith(sig)), None)
    name = (upload.name or "").lower()
    if kind is None:
        raise InvoiceRequestError(_("The invoice file must be a PDF, JPG or PNG."))
    if not any(name.endswith(ext) for ext in _EXTENSIONS[kind]):
        raise InvoiceRequestError(_("The file's name does not match its content (%(kind)s).") % {"kind": kind})
    if kind == "pdf":
        upload.seek(max(0, upload.size - 1024))
        tail = upload.read()
        upload.seek(0)
        if b"%%EOF" not in tail:
            raise InvoiceRequestError(_("The PDF is incomplete (no end-of-file marker)."))
    return kind


def invoice_request_issue(*, request: InvoiceRequest, number: str, date: dt.date, upload: UploadedFile | None,
                          staff_user, now: dt.datetime) -> InvoiceRequest:
    """Record the issued invoice (its number and date, and the file if any)."""
    if not number.strip():
        raise InvoiceRequestError(_("Enter the invoice number."))
    if upload is not None:
        invoice_file_check(upload)
    with transaction.atomic():
        locked = InvoiceRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status != InvoiceStatus.REQUESTED:
            raise InvoiceRequestError(_("This request was already decided."))
        locked.status, locked.decided_at, locked.decided_by = InvoiceStatus.ISSUED, now, staff_user
        locked.invoice_number, locked.invoice_date = number.strip(), date
        if upload is not None:
            locked.invoice_file.save(f"{locked.public_id}{file_suffix(upload)}", upload, save=False)
        locked.save()
        audit_record(action="tax_invoice.issued", actor=staff_user, account=locked.account, obj=locked, at=now,
                     summary=f"{locked.account.code}: invoice {locked.invoice_number} of {locked.invoice_date} "
                             f"issued, {locked.amount} {locked.currency}",
                     data={"number": locked.invoice_number, "date": locked.invoice_date,
                           "file": locked.invoice_file.name})
        _notify(locked)
    return locked


def invoice_request_reject(*, request: InvoiceRequest, reason: str, staff_user, now: dt.datetime) -> InvoiceRequest:
    """Reject with a reason; the request's bills can be requested again."""
    if not reason.strip():
        raise InvoiceRequestError(_("Give the reason for the rejection; the customer reads it."))
    with transaction.atomic():
        locked = InvoiceRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status != InvoiceStatus.REQUESTED:
            raise InvoiceRequestError(_("This request was already decided."))
        locked.status, locked.decided_at, locked.decided_by = InvoiceStatus.REJECTED, now, staff_user
        locked.rejected_reason = reason.strip()[:500]
        locked.save()
        locked.bills.update(active=False)
        audit_record(action="tax_invoice.rejected", actor=staff_user, account=locked.account, obj=locked, at=now,
                     summary=f"{locked.account.code}: invoice request rejected: {locked.rejected_reason}",
                     data={"reason": locked.rejected_reason})
        _notify(locked)
    return locked


def tax_invoice_email_send(*, request: InvoiceRequest, site_url: str, now: dt.datetime) -> list[str]:
    """Email the decision (issued: with the invoice file attached; rejected:
    with the reason) to the requester's invoice address and the account's
    owners and accountants, once. Returns the recipients ([] if sent before
    or undecided). A transport failure releases the claim and raises."""
    if request.status == InvoiceStatus.REQUESTED:
        return []
    claimed = InvoiceRequest.objects.filter(pk=request.pk, decision_emailed_at__isnull=True).update(
        decision_emailed_at=now)
    if not claimed:
        return []
    recipients = [request.email] + [e for e in account_recipients(account=request.account) if e != request.email]
    context = {"request": request, "site_url": site_url, "bills": list(request.bills.select_related("bill"))}
    subject = render_to_string("email/tax_invoice_subject.txt", context).strip()
    message = EmailMessage(subject=subject, body=render_to_string("email/tax_invoice.txt", context), to=recipients)
    if request.status == InvoiceStatus.ISSUED and request.invoice_file:
        with request.invoice_file.open("rb") as handle:
            message.attach(f"invoice-{request.invoice_number}{file_suffix(request.invoice_file)}", handle.read())
    try:
        message.send()
    except Exception:
        InvoiceRequest.objects.filter(pk=request.pk).update(decision_emailed_at=None)
        raise
    return recipients


def file_suffix(upload) -> str:
    """``.pdf``, ``.png`` or ``.jpg`` (for ``.jpeg``) from a file's name."""
    name = (upload.name or "").lower()
    return ".jpg" if name.endswith(".jpeg") else name[name.rfind("."):] if "." in name else ""


def _notify(request: InvoiceRequest) -> None:
    from .tasks import tax_invoice_decided_send

    enqueue_on_commit(tax_invoice_decided_send, request.pk)

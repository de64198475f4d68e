"""Bills, bill lines, pack deductions and statements (billing-rules §4–§5).

A Bill is the settlement of one account for one period; at most one exists
per (account, period), enforced by the database. Its lines never change
after settlement except ``paid``, ``balance`` and ``status`` (repayments).
Money columns are Decimal(14, 2) in the bill's currency.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import Account
from core.money import (
    MONEY_DIGITS,
    MONEY_PLACES,
    PRICE_DIGITS,
    PRICE_PLACES,
    QUANTITY_DIGITS,
    QUANTITY_PLACES,
)
from usage.models import EmailPack, Region, ServiceItem

PERIOD_REGEX = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


def _money(**kw):
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kw)


def _quantity(**kw):
    return models.DecimalField(max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, **kw)


class LineStatus(models.TextChoices):
    PAID = "Paid", pgettext_lazy("line status", "Paid")
    OVERDRAWN = "Overdrawn", pgettext_lazy("line status", "Overdrawn")


# What the console and documents call a line status (the stored values stay
# English: they are the CSV's and the API's); Pending is the month-to-date
# estimate's status, never stored.
STATUS_LABELS = {
    "Paid": LineStatus.PAID.label,
    "Overdrawn": LineStatus.OVERDRAWN.label,
    "Pending": pgettext_lazy("line status", "Pending"),
}


class Bill(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="bills", verbose_name=_("account"))
    period = models.CharField(max_length=7, help_text=_("YYYY-MM (UTC+8 calendar month)"), verbose_name=_("period"))
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    settled_at = models.DateTimeField(default=timezone.now, verbose_name=_("settled at"))
    # sum of line amounts, in currency units
    total_amount = _money(default=0, verbose_name=_("total amount"))
    # funds applied at settlement, in currency units
    funds_applied = _money(default=0, verbose_name=_("funds applied"))
    # billing information as it stood at settlement (statements print this)
    billing_info_snapshot = models.JSONField(default=dict, blank=True, verbose_name=_("billing info snapshot"))

    class Meta:
        verbose_name = _("bill")
        verbose_name_plural = _("bills")
        ordering = ["account__code", "-period"]
        constraints = [
            models.UniqueConstraint(fields=["account", "period"], name="bill_one_per_account_period"),
            models.CheckConstraint(condition=Q(period__regex=PERIOD_REGEX), name="bill_period_format"),
            models.CheckConstraint(condition=Q(total_amount__gte=0), name="bill_total_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.account.code} {self.period}"


class BillLine(models.Model):
    """One (account, period, service item, region) line. An adjustment line
    (``adjustment_for`` set) bills late usage of an earlier period.

    Invariants ``amount = paid + balance`` and ``usage = deducted +
    billable`` are CHECK constraints on PostgreSQL (migration 0002); SQLite
    stores decimals as binary floating point, where exact sums cannot be
    compared, so there they are checked by the tests only."""

    bill = models.ForeignKey(Bill, on_delete=models.PROTECT, related_name="lines", verbose_name=_("bill"))
    service = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+", verbose_name=_("service"))
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("region"))
    adjustment_for = models.CharField(
        max_length=7, blank=True, default="", help_text=_("YYYY-MM of late usage, or empty"),
        verbose_name=_("adjustment for"),
    )
    position = models.PositiveIntegerField(default=0, help_text=_("catalog order, region, adjustments last"),
        verbose_name=_("position"),
    )
    # service units
    usage_quantity = _quantity(verbose_name=_("usage quantity"))
    deducted_quantity = _quantity(default=0, verbose_name=_("deducted quantity"))
    billable_quantity = _quantity(verbose_name=_("billable quantity"))
    # currency units per service unit
    unit_price = models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES,
        verbose_name=_("unit price"),
    )
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    amount = _money(verbose_name=_("amount"))
    paid = _money(default=0, verbose_name=_("paid"))
    balance = _money(verbose_name=_("balance"))
    status = models.CharField(max_length=16, choices=LineStatus.choices, verbose_name=_("status"))
    # email lines only: usage by delivery result (emails)
    delivered = models.BigIntegerField(null=True, blank=True, verbose_name=_("delivered"))
    soft_bounce = models.BigIntegerField(null=True, blank=True, verbose_name=_("soft bounce"))
    format_error = models.BigIntegerField(null=True, blank=True, verbose_name=_("format error"))
    not_exist = models.BigIntegerField(null=True, blank=True, verbose_name=_("not exist"))
    reject = models.BigIntegerField(null=True, blank=True, verbose_name=_("reject"))
    junk_mail = models.BigIntegerField(null=True, blank=True, verbose_name=_("junk mail"))

    class Meta:
        verbose_name = _("bill line")
        verbose_name_plural = _("bill lines")
        ordering = ["bill", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["bill", "service", "region", "adjustment_for"], name="bill_line_unique"
            ),
            models.CheckConstraint(condition=Q(paid__gte=0) & Q(balance__gte=0), name="line_money_non_negative"),
            models.CheckConstraint(
                condition=(Q(status="Paid") & Q(balance=0)) | (Q(status="Overdrawn") & Q(balance__gt=0)),
                name="line_status_matches_balance",
            ),
            models.CheckConstraint(
                condition=Q(adjustment_for="") | Q(adjustment_for__regex=PERIOD_REGEX),
                name="line_adjustment_period_format",
            ),
        ]
        indexes = [models.Index(fields=["status"], name="bill_line_status")]

    def __str__(self) -> str:
        adj = f" (adjustment for {self.adjustment_for})" if self.adjustment_for else ""
        return f"{self.bill} {self.service_id}/{self.region_id}{adj}"


class PackDeduction(models.Model):
    """Emails taken from a pack for one day of a bill line (append-only)."""

    pack = models.ForeignKey(EmailPack, on_delete=models.PROTECT, related_name="deductions", verbose_name=_("pack"))
    line = models.ForeignKey(BillLine, on_delete=models.PROTECT, related_name="pack_deductions",
        verbose_name=_("line"),
    )
    day = models.DateField(help_text=_("UTC+8 day of the usage"), verbose_name=_("day"))
    quantity = models.BigIntegerField(help_text=_("emails"), verbose_name=_("quantity"))

    class Meta:
        verbose_name = _("pack deduction")
        verbose_name_plural = _("pack deductions")
        ordering = ["day", "pack"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="pack_deduction_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} emails from pack {self.pack_id} on {self.day}"


class StatementCounter(models.Model):
    """Last statement number issued in a year (numbers are never reused)."""

    year = models.PositiveIntegerField(primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"


class Statement(models.Model):
    """The statement of a bill: its number, and the PDF as rendered at issue,
    archived with its SHA-256 for audit (never rewritten).

    The download and the email render the statement again as of their own
    instant (billed figures unchanged, paid and balance current, payments
    since issue listed), so what a customer reads never contradicts the
    console; ``issued_lines`` keeps each line's figures at issue, from which
    the payments since issue are known."""

    bill = models.OneToOneField(Bill, on_delete=models.PROTECT, related_name="statement", verbose_name=_("bill"))
    number = models.CharField(max_length=32, unique=True, help_text=_("e.g. AUR-2026-000123"),
        verbose_name=_("number"),
    )
    issued_at = models.DateTimeField(default=timezone.now, verbose_name=_("issued at"))
    pdf = models.FileField(upload_to="statements/%Y/", max_length=200, blank=True,
                           help_text=_("the PDF as rendered at issue (archived)"), verbose_name=_("pdf"))
    sha256 = models.CharField(max_length=64, blank=True, help_text=_("SHA-256 (hex) of the archived PDF"),
        verbose_name=_("sha256"),
    )
    # {"<bill line id>": {"paid": "5.00", "balance": "0.40", "status": "Overdrawn"}}
    # at issue; amounts as decimal strings in the bill's currency
    issued_lines = models.JSONField(default=dict, blank=True, verbose_name=_("issued lines"))
    emailed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("emailed at"))
    email_recipients = models.TextField(blank=True, verbose_name=_("email recipients"))
    email_attempts = models.PositiveIntegerField(default=0, verbose_name=_("email attempts"))
    last_email_error = models.TextField(blank=True, verbose_name=_("last email error"))

    class Meta:
        verbose_name = _("statement")
        verbose_name_plural = _("statements")
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return self.number


# --- tax invoices (发票): requests for paid bills, issued by staff ----------
# docs/tax-invoices.md. Strings users read are translatable.

class InvoiceKind(models.TextChoices):
    GENERAL_VAT = "general_vat", _("General VAT invoice (增值税普通发票)")
    SPECIAL_VAT = "special_vat", _("Special VAT invoice (增值税专用发票)")
    COMMERCIAL = "commercial", _("Commercial invoice (foreign customers)")


class InvoiceStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    ISSUED = "issued", _("Issued")
    REJECTED = "rejected", _("Rejected")


class InvoiceRequest(models.Model):
    """A customer's request for a tax invoice over fully paid bills.

    The title and tax details are as the customer entered them; the billing
    information is frozen as it stood at the request. ``amount`` (currency
    units) is the sum of the bills' paid amounts, never more; each bill is on
    at most one request that is not rejected (``InvoiceRequestBill``)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("public id"))
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="invoice_requests",
        verbose_name=_("account"),
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                     related_name="+", verbose_name=_("requested by"))
    requested_at = models.DateTimeField(default=timezone.now, verbose_name=_("requested at"))
    kind = models.CharField(max_length=16, choices=InvoiceKind.choices, verbose_name=_("kind"))
    title = models.CharField(max_length=200, help_text=_("invoice title (发票抬头): the buyer's name"),
        verbose_name=_("title"),
    )
    taxpayer_id = models.CharField(max_length=20, blank=True, help_text=_("纳税人识别号 / VAT number"),
        verbose_name=_("taxpayer id"),
    )
    address_phone = models.CharField(max_length=300, blank=True, help_text=_("registered address and phone"),
        verbose_name=_("address phone"),
    )
    bank_account = models.CharField(max_length=300, blank=True, help_text=_("bank name and account number"),
        verbose_name=_("bank account"),
    )
    email = models.EmailField(help_text=_("where the invoice is sent"), verbose_name=_("email"))
    # sum of the bills' paid amounts at the request, in currency units
    amount = _money(verbose_name=_("amount"))
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    billing_info_snapshot = models.JSONField(default=dict, blank=True, verbose_name=_("billing info snapshot"))
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.REQUESTED,
        verbose_name=_("status"),
    )
    decided_at = models.DateTimeField(null=True, blank=True, verbose_name=_("decided at"))
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("decided by"))
    invoice_number = models.CharField(max_length=64, blank=True, verbose_name=_("invoice number"))
    invoice_date = models.DateField(null=True, blank=True, verbose_name=_("invoice date"))
    invoice_file = models.FileField(upload_to="tax-invoices/%Y/", max_length=200, blank=True,
        verbose_name=_("invoice file"),
    )
    rejected_reason = models.CharField(max_length=500, blank=True, verbose_name=_("rejected reason"))
    # the decision email, claimed once (a retry never sends it twice)
    decision_emailed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("decision emailed at"))

    class Meta:
        verbose_name = _("invoice request")
        verbose_name_plural = _("invoice requests")
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="invoice_request_amount_positive"),
            models.CheckConstraint(
                condition=(Q(status="requested") & Q(decided_at__isnull=True))
                | (Q(status="issued") & Q(decided_at__isnull=False) & ~Q(invoice_number=""))
                | (Q(status="rejected") & Q(decided_at__isnull=False) & ~Q(rejected_reason="")),
                name="invoice_request_decision_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account.code} {self.get_kind_display()} {self.amount} {self.currency}"


class InvoiceRequestBill(models.Model):
    """A bill on a request, with the paid amount invoiced. ``active`` while
    the request is not rejected: the partial unique constraint makes a bill
    invoiced at most once, even for two requests racing."""

    request = models.ForeignKey(InvoiceRequest, on_delete=models.PROTECT, related_name="bills",
        verbose_name=_("request"),
    )
    bill = models.ForeignKey(Bill, on_delete=models.PROTECT, related_name="invoice_items", verbose_name=_("bill"))
    # the bill's paid amount at the request (currency units)
    amount = _money(verbose_name=_("amount"))
    active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name = _("invoice request bill")
        verbose_name_plural = _("invoice request bills")
        ordering = ["bill__period"]
        constraints = [
            models.UniqueConstraint(fields=["bill"], condition=Q(active=True), name="bill_invoiced_once"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="invoice_item_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.bill} {self.amount}"

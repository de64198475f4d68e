"""The funds ledger (billing-rules §5–§6).

The ledger is append-only: every movement of an account's prepaid funds is
a new row, and the funds balance is the sum of ``amount`` over the account's
rows. Amounts are Decimal(14, 2) in the account's currency; positive adds to
the funds, negative takes from them.

- ``topup``: money added to the funds (staff, provisioning, or paid online).
- ``settlement``: funds applied to one bill line at settlement (negative).
- ``repayment``: money received for an overdraft (positive) …
- ``repayment_application``: … and applied to one overdrawn line (negative),
  so a repayment nets to zero on the funds and is fully traceable.
"""
from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import Account
from core.money import MONEY_DIGITS, MONEY_PLACES
from invoices.models import BillLine


class EntryKind(models.TextChoices):
    TOPUP = "topup", _("Top-up")
    SETTLEMENT = "settlement", _("Applied at settlement")
    REPAYMENT = "repayment", _("Repayment received")
    REPAYMENT_APPLICATION = "repayment_application", _("Repayment applied")


class LedgerEntry(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=32, choices=EntryKind.choices)
    # currency units; > 0 adds to the funds, < 0 takes from them
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    currency = models.CharField(max_length=3)
    at = models.DateTimeField(default=timezone.now, help_text="when the money moved (UTC)")
    # idempotency key of the movement: the top-up reference, the payment id, …
    reference = models.CharField(max_length=120, blank=True, default="")
    line = models.ForeignKey(
        BillLine, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    memo = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind__in=["topup", "repayment"]) & Q(amount__gt=0))
                | (Q(kind__in=["settlement", "repayment_application"]) & Q(amount__lt=0)),
                name="ledger_sign_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["topup", "repayment"]) | Q(line__isnull=False),
                name="ledger_application_has_line",
            ),
            # A top-up reference is booked once per account (provisioning and
            # providers rely on it for idempotency).
            models.UniqueConstraint(
                fields=["account", "kind", "reference"],
                condition=Q(kind__in=["topup", "repayment"]) & ~Q(reference=""),
                name="ledger_reference_once",
            ),
            # Funds are applied to a line at most once at settlement.
            models.UniqueConstraint(
                fields=["line"], condition=Q(kind="settlement"), name="ledger_settlement_once_per_line"
            ),
            # A repayment pays a line's whole balance, so a line is repaid at
            # most once: the last guard against charging a line twice.
            models.UniqueConstraint(
                fields=["line"], condition=Q(kind="repayment_application"),
                name="ledger_repayment_once_per_line",
            ),
        ]
        indexes = [models.Index(fields=["account", "at"], name="ledger_account_at")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.kind} {self.amount} {self.currency}"


# --- Payments through providers (billing-rules §6, top-ups of §5) ---------


class PaymentPurpose(models.TextChoices):
    REPAYMENT = "repayment", _("Repayment of overdrawn lines")
    TOPUP = "topup", _("Funds top-up")


class PaymentMethod(models.TextChoices):
    ALIPAY = "alipay", _("Alipay")
    PAYPAL = "paypal", _("PayPal")
    WIRE = "wire", _("Wire transfer")
    SANDBOX = "sandbox", _("Sandbox (test payments)")


class PaymentStatus(models.TextChoices):
    PENDING = "pending", pgettext_lazy("payment status", "Awaiting payment")
    SUCCEEDED = "succeeded", pgettext_lazy("payment status", "Paid")
    DECLINED = "declined", pgettext_lazy("payment status", "Declined")
    CANCELLED = "cancelled", pgettext_lazy("payment status", "Cancelled")


def payment_reference_new() -> str:
    """A short reference a person can type on a bank transfer: ``AUR-7KQ4-M2XD``
    (no 0/O or 1/I)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    chars = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"AUR-{chars[:4]}-{chars[4:]}"


class Payment(models.Model):
    """One attempt to receive money for an account: a repayment of the
    overdrawn lines frozen in its PaymentLine rows, or a funds top-up.

    A payment is created once per (account, idempotency key); a double
    submit returns the same row. ``status`` moves from pending to exactly
    one end state through ``payments.services.payment_confirm`` (or
    ``payment_cancel``); money received is booked in the ledger with the
    reference ``payment:<public_id>``, which the ledger books once.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False,
                                 help_text="used in URLs and as the provider's order number")
    reference = models.CharField(max_length=20, unique=True, default=payment_reference_new,
                                 help_text="human reference, e.g. on a wire transfer")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payments")
    purpose = models.CharField(max_length=16, choices=PaymentPurpose.choices)
    method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    # currency units: the exact amount to receive (sum of the frozen balances)
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=64)
    provider_transaction_id = models.CharField(
        max_length=128, blank=True, default="", help_text="the provider's id of the money movement"
    )
    provider_order_id = models.CharField(
        max_length=128, blank=True, default="", help_text="the provider's id of the order (PayPal)"
    )
    checkout_url = models.URLField(
        max_length=2000, blank=True, default="", help_text="where the payer completes the payment"
    )
    # True when money arrived but its lines had been paid otherwise meanwhile:
    # the amount (or what no line could take) was booked as funds instead.
    credited_to_funds = models.BooleanField(default=False)
    status_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="staff member who confirmed a wire transfer",
    )
    receipt_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "idempotency_key"], name="payment_idempotency_key_once"),
            models.UniqueConstraint(
                fields=["method", "provider_transaction_id"], condition=~Q(provider_transaction_id=""),
                name="payment_provider_transaction_once",
            ),
            # At most one repayment of an account awaits payment at a time (a
            # new one cancels the older one first).
            models.UniqueConstraint(
                fields=["account"], condition=Q(purpose="repayment", status="pending"),
                name="payment_one_pending_repayment",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "declined", "cancelled"]),
                name="payment_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["account", "status"], name="payment_account_status")]

    def __str__(self) -> str:
        return f"{self.reference} {self.get_purpose_display()} {self.amount} {self.currency} ({self.status})"

    @property
    def ledger_reference(self) -> str:
        return f"payment:{self.public_id}"

    @property
    def is_pending(self) -> bool:
        return self.status == PaymentStatus.PENDING


class PaymentLine(models.Model):
    """A bill line a repayment covers, with its balance frozen when the
    repay page was opened: the payment's amount is the sum of these."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="lines")
    line = models.ForeignKey(BillLine, on_delete=models.PROTECT, related_name="payment_lines")
    # currency units: the line's balance shown to the payer
    balance = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)

    class Meta:
        ordering = ["line__bill__period", "line__position"]
        constraints = [
            models.UniqueConstraint(fields=["payment", "line"], name="payment_line_once"),
            models.CheckConstraint(condition=Q(balance__gt=0), name="payment_line_balance_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.payment.reference}: {self.line} {self.balance}"


class PaymentEvent(models.Model):
    """Append-only audit trail of a payment: created, started, every provider
    callback (verified or refused, with its payload), confirmations."""

    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    kind = models.CharField(max_length=32, help_text="created, started, callback, refused, succeeded, …")
    message = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["kind", "at"], name="payment_event_kind_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.method} {self.kind}"

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

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account
from aurora_billing.money import MONEY_DIGITS, MONEY_PLACES
from invoices.models import BillLine


class EntryKind(models.TextChoices):
    TOPUP = "topup", "Top-up"
    SETTLEMENT = "settlement", "Applied at settlement"
    REPAYMENT = "repayment", "Repayment received"
    REPAYMENT_APPLICATION = "repayment_application", "Repayment applied"


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
        ]
        indexes = [models.Index(fields=["account", "at"], name="ledger_account_at")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.kind} {self.amount} {self.currency}"

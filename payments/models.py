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
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_entries",
        verbose_name=_("account"),
    )
    kind = models.CharField(max_length=32, choices=EntryKind.choices, verbose_name=_("kind"))
    # currency units; > 0 adds to the funds, < 0 takes from them
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, verbose_name=_("amount"))
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    at = models.DateTimeField(default=timezone.now, help_text=_("when the money moved (UTC)"), verbose_name=_("at"))
    # idempotency key of the movement: the top-up reference, the payment id, …
    reference = models.CharField(max_length=120, blank=True, default="", verbose_name=_("reference"))
    line = models.ForeignKey(
        BillLine, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries",
        verbose_name=_("line"),
    )
    memo = models.CharField(max_length=300, blank=True, verbose_name=_("memo"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("ledger entry")
        ordering = ["at", "id"]
        verbose_name_plural = _("ledger entries")
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
                                 help_text=_("used in URLs and as the provider's order number"),
        verbose_name=_("public id"),
    )
    reference = models.CharField(max_length=20, unique=True, default=payment_reference_new,
                                 help_text=_("human reference, e.g. on a wire transfer"), verbose_name=_("reference"))
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payments",
        verbose_name=_("account"),
    )
    purpose = models.CharField(max_length=16, choices=PaymentPurpose.choices, verbose_name=_("purpose"))
    method = models.CharField(max_length=16, choices=PaymentMethod.choices, verbose_name=_("method"))
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING,
        verbose_name=_("status"),
    )
    # currency units: the exact amount to receive (sum of the frozen balances)
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, verbose_name=_("amount"))
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    idempotency_key = models.CharField(max_length=64, verbose_name=_("idempotency key"))
    provider_transaction_id = models.CharField(
        max_length=128, blank=True, default="", help_text=_("the provider's id of the money movement"),
        verbose_name=_("provider transaction id"),
    )
    provider_order_id = models.CharField(
        max_length=128, blank=True, default="", help_text=_("the provider's id of the order (PayPal)"),
        verbose_name=_("provider order id"),
    )
    checkout_url = models.URLField(
        max_length=2000, blank=True, default="", help_text=_("where the payer completes the payment"),
        verbose_name=_("checkout url"),
    )
    # True when money arrived but its lines had been paid otherwise meanwhile:
    # the amount (or what no line could take) was booked as funds instead.
    credited_to_funds = models.BooleanField(default=False, verbose_name=_("credited to funds"))
    status_reason = models.CharField(max_length=300, blank=True, verbose_name=_("status reason"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    completed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("completed at"))
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("staff member who confirmed a wire transfer"), verbose_name=_("confirmed by")
    )
    receipt_sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("receipt sent at"))

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
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

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="lines", verbose_name=_("payment"))
    line = models.ForeignKey(BillLine, on_delete=models.PROTECT, related_name="payment_lines",
        verbose_name=_("line"),
    )
    # currency units: the line's balance shown to the payer
    balance = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, verbose_name=_("balance"))

    class Meta:
        verbose_name = _("payment line")
        verbose_name_plural = _("payment lines")
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

    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.CASCADE, related_name="events",
        verbose_name=_("payment"),
    )
    method = models.CharField(max_length=16, choices=PaymentMethod.choices, verbose_name=_("method"))
    kind = models.CharField(max_length=32, help_text=_("created, started, callback, refused, succeeded, …"),
        verbose_name=_("kind"),
    )
    message = models.CharField(max_length=500, blank=True, verbose_name=_("message"))
    payload = models.JSONField(default=dict, blank=True, verbose_name=_("payload"))
    at = models.DateTimeField(default=timezone.now, verbose_name=_("at"))

    class Meta:
        verbose_name = _("payment event")
        verbose_name_plural = _("payment events")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["kind", "at"], name="payment_event_kind_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.method} {self.kind}"


# --- Alerts (issue #18): funds, budget, overdrawn periods, packs, wires ------


class AlertKind(models.TextChoices):
    FUNDS_LOW = "funds_low", _("Funds below the threshold")
    BUDGET = "budget", _("Month to date above the budget")
    OVERDRAWN = "overdrawn", _("Period settled Overdrawn")
    PACK_LOW = "pack_low", _("Email pack running low")
    PACK_EXPIRING = "pack_expiring", _("Email pack expiring")
    WIRE_WAITING = "wire_waiting", _("Wire transfer awaited")


class BudgetBasis(models.TextChoices):
    MONTH_TO_DATE = "month_to_date", _("Month-to-date amount")
    FORECAST = "forecast", _("Month-end forecast")


class AlertSettings(models.Model):
    """An account's alert settings (the owner edits them). Without a row
    the defaults apply: Overdrawn periods, packs and awaited wire transfers
    on; funds and budget off until the owner sets their amounts."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="alert_settings",
        verbose_name=_("account"),
    )
    funds_low_on = models.BooleanField(default=False, verbose_name=_("funds low on"))
    # currency units of the account: alert when the funds balance is below it
    funds_threshold = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True,
                                          blank=True, verbose_name=_("funds threshold"))
    budget_on = models.BooleanField(default=False, verbose_name=_("budget on"))
    # currency units of the account: alert when the month's figure is above it
    budget_amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True,
                                        blank=True, verbose_name=_("budget amount"))
    budget_basis = models.CharField(max_length=16, choices=BudgetBasis.choices, default=BudgetBasis.MONTH_TO_DATE,
        verbose_name=_("budget basis"),
    )
    overdrawn_on = models.BooleanField(default=True, verbose_name=_("overdrawn on"))
    pack_low_on = models.BooleanField(default=True, verbose_name=_("pack low on"))
    pack_low_percent = models.PositiveSmallIntegerField(default=20, help_text=_("percent of the pack left"),
        verbose_name=_("pack low percent"),
    )
    pack_expiring_on = models.BooleanField(default=True, verbose_name=_("pack expiring on"))
    pack_expiring_days = models.PositiveSmallIntegerField(default=7, help_text=_("days before the last valid day"),
        verbose_name=_("pack expiring days"),
    )
    wire_waiting_on = models.BooleanField(default=True, verbose_name=_("wire waiting on"))
    wire_waiting_days = models.PositiveSmallIntegerField(default=5, help_text=_("days since the wire was started"),
        verbose_name=_("wire waiting days"),
    )
    updated_at = models.DateTimeField(null=True, blank=True, verbose_name=_("updated at"))
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", verbose_name=_("updated by"))

    class Meta:
        verbose_name = _("alert settings")
        verbose_name_plural = _("alert settings")
        constraints = [
            models.CheckConstraint(condition=Q(funds_low_on=False) | Q(funds_threshold__isnull=False),
                                   name="alert_funds_threshold_set"),
            models.CheckConstraint(condition=Q(budget_on=False) | Q(budget_amount__gt=0),
                                   name="alert_budget_amount_set"),
            models.CheckConstraint(condition=Q(pack_low_percent__gte=1) & Q(pack_low_percent__lte=99),
                                   name="alert_pack_percent_range"),
            models.CheckConstraint(condition=Q(pack_expiring_days__gte=1) & Q(pack_expiring_days__lte=365),
                                   name="alert_pack_days_range"),
            models.CheckConstraint(condition=Q(wire_waiting_days__gte=1) & Q(wire_waiting_days__lte=365),
                                   name="alert_wire_days_range"),
        ]

    def __str__(self) -> str:
        return f"alert settings of {self.account_id}"

    def is_on(self, kind: str) -> bool:
        return bool(getattr(self, f"{kind}_on"))


class AlertOptOut(models.Model):
    """A user who receives no alert emails of one account (their choice)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", verbose_name=_("account"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
        verbose_name=_("user"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("alert opt out")
        verbose_name_plural = _("alert opt outs")
        constraints = [models.UniqueConstraint(fields=["account", "user"], name="alert_opt_out_once")]

    def __str__(self) -> str:
        return f"{self.user_id} opts out of {self.account_id}'s alerts"


class AlertState(models.TextChoices):
    ACTIVE = "active", _("Active")
    CLEARED = "cleared", _("Cleared")


class Alert(models.Model):
    """One crossing of one condition: raised when the condition starts to
    hold, ``cleared`` when it stops; the next crossing is a new row.

    (account, kind, subject, crossing) is the idempotency key of the alert
    and its emails: a rerun, a retried task or a second beat process finds
    the row and raises nothing. At most one row per (account, kind, subject)
    is active."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alerts", verbose_name=_("account"))
    kind = models.CharField(max_length=16, choices=AlertKind.choices, verbose_name=_("kind"))
    # what the condition is about: "" (the account), a period YYYY-MM,
    # "pack:<id>", "payment:<public id>"
    subject = models.CharField(max_length=64, blank=True, default="", verbose_name=_("subject"))
    crossing = models.PositiveIntegerField(help_text=_("1 for the first crossing of this condition, then 2, …"),
        verbose_name=_("crossing"),
    )
    state = models.CharField(max_length=8, choices=AlertState.choices, default=AlertState.ACTIVE,
        verbose_name=_("state"),
    )
    raised_at = models.DateTimeField(verbose_name=_("raised at"))
    cleared_at = models.DateTimeField(null=True, blank=True, verbose_name=_("cleared at"))
    # currency units of the account: the figure that crossed (funds, month
    # to date or forecast, overdrawn amount, wire amount) and the limit
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True,
        verbose_name=_("amount"),
    )
    threshold = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True,
        verbose_name=_("threshold"),
    )
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    # kind-specific figures at raising: pack reference, remaining, days, …
    detail = models.JSONField(default=dict, blank=True, verbose_name=_("detail"))

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "kind", "subject", "crossing"], name="alert_crossing_once"),
            models.UniqueConstraint(fields=["account", "kind", "subject"], condition=Q(state="active"),
                                    name="alert_one_active_per_subject"),
            models.CheckConstraint(condition=Q(state__in=["active", "cleared"]), name="alert_state_valid"),
            models.CheckConstraint(condition=Q(crossing__gte=1), name="alert_crossing_positive"),
        ]
        indexes = [models.Index(fields=["account", "state"], name="alert_account_state")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.kind} {self.subject or '-'} #{self.crossing} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state == AlertState.ACTIVE


class AlertEmail(models.Model):
    """The email of one alert to one recipient, claimed once: the row is
    locked while sending and ``sent_at`` records success; a transport
    failure is recorded and retried with backoff."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="emails", verbose_name=_("alert"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
        verbose_name=_("user"),
    )
    email = models.EmailField(help_text=_("the address at the time the alert was raised"), verbose_name=_("email"))
    sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("sent at"))
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    last_error = models.CharField(max_length=2000, blank=True, default="", verbose_name=_("last error"))

    class Meta:
        verbose_name = _("alert email")
        verbose_name_plural = _("alert emails")
        ordering = ["alert_id", "email"]
        constraints = [models.UniqueConstraint(fields=["alert", "user"], name="alert_email_once_per_user")]
        indexes = [models.Index(fields=["sent_at"], name="alert_email_sent_at")]

    def __str__(self) -> str:
        return f"alert {self.alert_id} → {self.email} ({'sent' if self.sent_at else 'unsent'})"

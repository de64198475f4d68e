"""Catalog, regions, prices, email packs and daily usage (billing-rules §2–§4).

Service items and regions use their short code as primary key, so usage
rows, prices and bill lines carry readable codes and imports need no
look-ups. Quantities are Decimal(20, 6); unit prices Decimal(18, 6).
"""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import npgettext, pgettext_lazy

from accounts.models import Account
from core.money import PRICE_DIGITS, PRICE_PLACES, QUANTITY_DIGITS, QUANTITY_PLACES, currency_check


class ServiceCode(models.TextChoices):
    """The five service items, in catalog order (§2)."""

    EMAIL = "email", pgettext_lazy("service item", "Email")
    DATA_FLOW = "data_flow", pgettext_lazy("service item", "Data Flow")
    DEDICATED_IP = "dedicated_ip", pgettext_lazy("service item", "Dedicated IP")
    DATA_MASKING = "data_masking", pgettext_lazy("service item", "Data Masking")
    BIMI_CERTIFICATION = "bimi_certification", pgettext_lazy("service item", "BIMI Certification")


CATALOG_ORDER = [c.value for c in ServiceCode]


class EmailResult(models.TextChoices):
    """The six billable email delivery results, in display order (§2)."""

    DELIVERED = "delivered", _("Delivered")
    SOFT_BOUNCE = "soft_bounce", _("Soft Bounce")
    FORMAT_ERROR = "format_error", _("Invalid: Format Error")
    NOT_EXIST = "not_exist", _("Invalid: Not Exist")
    REJECT = "reject", _("Invalid: Reject")
    JUNK_MAIL = "junk_mail", _("Invalid: Junk Mail")


EMAIL_RESULTS = [r.value for r in EmailResult]
# Labels are lazy translations (docs/i18n.md): str() them in the language
# of the page or document; the stored codes and the CSV stay English.
RESULT_CATEGORY = {
    "delivered": _("Delivered"),
    "soft_bounce": _("Soft Bounce"),
    "format_error": _("Invalid Email"),
    "not_exist": _("Invalid Email"),
    "reject": _("Invalid Email"),
    "junk_mail": _("Invalid Email"),
}


def service_item_label(*, code: str, name: str) -> str:
    """A service item's name in the active language: the catalog's
    translation while ``name`` is the seeded English name, else ``name`` as
    staff wrote it (the stored name is never translated in the database)."""
    try:
        item = ServiceCode(code)
    except ValueError:
        return name
    with translation.override("en"):
        english = str(item.label)
    return str(item.label) if name == english else name
# The catalog's units as shown beside a quantity, singular and plural.
_UNIT_FORMS = {
    "email": lambda n: npgettext("unit", "email", "emails", n),
    "GB": lambda n: npgettext("unit", "GB", "GB", n),
    "IP-month": lambda n: npgettext("unit", "IP-month", "IP-months", n),
    "request": lambda n: npgettext("unit", "request", "requests", n),
    "certificate-month": lambda n: npgettext("unit", "certificate-month", "certificate-months", n),
}


def unit_label(*, unit: str, quantity) -> str:
    """``email`` → ``emails`` unless the quantity is exactly 1, in the
    active language (封, GB, IP·月 …); a unit outside the catalog gets an
    English ``s``."""
    n = 1 if quantity == 1 else 2
    forms = _UNIT_FORMS.get(unit)
    if forms is not None:
        return forms(n)
    return unit if n == 1 else f"{unit}s"


# Services whose quantity is a whole number; data_flow takes 6 decimals.
WHOLE_QUANTITY_SERVICES = frozenset({"email", "dedicated_ip", "data_masking", "bimi_certification"})


class Region(models.Model):
    code = models.SlugField(max_length=32, primary_key=True, help_text=_("e.g. sg, hk, us-east"),
        verbose_name=_("code"),
    )
    name = models.CharField(max_length=100, verbose_name=_("name"))

    class Meta:
        verbose_name = _("region")
        verbose_name_plural = _("regions")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class ServiceItem(models.Model):
    """The five service items, seeded by migration 0002."""

    code = models.CharField(max_length=32, primary_key=True, choices=ServiceCode.choices, verbose_name=_("code"))
    name = models.CharField(max_length=64, verbose_name=_("name"))
    unit = models.CharField(max_length=32, help_text=_("e.g. email, GB, IP-month"), verbose_name=_("unit"))
    position = models.PositiveSmallIntegerField(unique=True, help_text=_("catalog order"), verbose_name=_("position"))

    class Meta:
        verbose_name = _("service item")
        verbose_name_plural = _("service items")
        ordering = ["position"]

    def __str__(self) -> str:
        return self.name


class Price(models.Model):
    """Unit price of a service item in a region from ``effective_from`` on.
    The price in effect on a period's first day applies to the period (§3)."""

    service = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="prices",
        verbose_name=_("service"),
    )
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="prices", verbose_name=_("region"))
    # currency units per service unit, up to 6 decimals
    unit_price = models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES,
        verbose_name=_("unit price"),
    )
    currency = models.CharField(max_length=3, default="USD", verbose_name=_("currency"))
    effective_from = models.DateField(help_text=_("UTC+8 day"), verbose_name=_("effective from"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("price")
        verbose_name_plural = _("prices")
        ordering = ["service__position", "region_id", "currency", "effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "region", "currency", "effective_from"], name="price_unique"
            ),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="price_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.service_id}/{self.region_id} {self.unit_price} {self.currency} from {self.effective_from}"

    def clean(self) -> None:
        try:
            currency_check(self.currency)
        except ValueError as exc:
            raise ValidationError({"currency": str(exc)}) from None


class EmailPack(models.Model):
    """Prepaid emails for one region, valid on UTC+8 days
    ``valid_from <= day < valid_until`` (§4). What it still holds is
    ``quantity`` minus its deductions (invoices.PackDeduction)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="packs", verbose_name=_("account"))
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="packs", verbose_name=_("region"))
    reference = models.CharField(max_length=100, verbose_name=_("reference"))
    quantity = models.BigIntegerField(help_text=_("emails"), verbose_name=_("quantity"))
    valid_from = models.DateField(help_text=_("UTC+8 day, inclusive"), verbose_name=_("valid from"))
    valid_until = models.DateField(help_text=_("UTC+8 day, exclusive"), verbose_name=_("valid until"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("email pack")
        verbose_name_plural = _("email packs")
        ordering = ["valid_until", "valid_from", "reference"]
        constraints = [
            models.UniqueConstraint(fields=["account", "reference"], name="pack_reference_unique"),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="pack_quantity_non_negative"),
            models.CheckConstraint(condition=Q(valid_until__gt=F("valid_from")), name="pack_validity_order"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.region_id}, {self.quantity} emails)"


class DailyUsage(models.Model):
    """Usage of one account, region, service item and (email only) result on
    one UTC+8 day. Imports add to ``quantity``; settlement records in
    ``billed_quantity`` how much of it a bill has covered, so usage arriving
    after settlement (late usage, §5) is ``quantity - billed_quantity`` and
    is billed exactly once."""

    # No single-column indexes: the unique key and usage_account_day lead
    # with the account, and region and service alone select nothing useful.
    # Each index costs every import (usage/services.py; docs/ingestion.md).
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="daily_usage", db_index=False,
        verbose_name=_("account"),
    )
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", db_index=False,
        verbose_name=_("region"),
    )
    service = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+", db_index=False,
        verbose_name=_("service"),
    )
    # '' for every service item but email (an empty string, not NULL, so the
    # unique key holds on every database)
    result = models.CharField(max_length=16, blank=True, default="", choices=EmailResult.choices,
        verbose_name=_("result"),
    )
    day = models.DateField(help_text=_("UTC+8 billing day"), verbose_name=_("day"))
    # service units (emails, GB, IP-months, requests, certificate-months)
    quantity = models.DecimalField(max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES,
        verbose_name=_("quantity"),
    )
    billed_quantity = models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, default=0, verbose_name=_("billed quantity")
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("daily usage")
        verbose_name_plural = _("daily usage")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "region", "service", "result", "day"], name="daily_usage_key"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="usage_quantity_non_negative"),
            models.CheckConstraint(
                condition=Q(billed_quantity__gte=0) & Q(billed_quantity__lte=F("quantity")),
                name="usage_billed_within_quantity",
            ),
            models.CheckConstraint(
                condition=(Q(service="email") & Q(result__in=EMAIL_RESULTS))
                | (~Q(service="email") & Q(result="")),
                name="usage_result_matches_service",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "day"], name="usage_account_day"),
            # The rows no bill has covered yet: what settlement and the
            # month-to-date estimate read (a small part of an account's history).
            models.Index(fields=["account", "day"], condition=Q(quantity__gt=F("billed_quantity")),
                         name="usage_unbilled"),
        ]

    def __str__(self) -> str:
        result = f"/{self.result}" if self.result else ""
        return f"{self.account_id} {self.region_id} {self.service_id}{result} {self.day}: {self.quantity}"


class IngestToken(models.Model):
    """A bearer token for ``POST /api/usage/``. Only its SHA-256 is stored;
    the token itself is shown once, when staff create it in admin (or
    provisioning does). A platform token (no ``account``) writes usage for
    every account; a tenant token only for its ``account``. Idempotency-Keys
    are per token (UsageImport)."""

    name = models.CharField(max_length=100, help_text=_("What sends with it, e.g. “delivery platform sg”."),
        verbose_name=_("name"),
    )
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="ingest_tokens",
        help_text=_("The only account this token writes usage for; empty: a platform token, for every account."),
        verbose_name=_("account"),
    )
    prefix = models.CharField(max_length=16, help_text=_("The token's first characters, to recognise it."),
        verbose_name=_("prefix"),
    )
    token_sha256 = models.CharField(max_length=64, unique=True, verbose_name=_("token sha256"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("created by"),
    )
    revoked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("revoked at"))
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("revoked by"),
    )
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last used at"))

    class Meta:
        verbose_name = _("ingest token")
        verbose_name_plural = _("ingest tokens")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope(self) -> str:
        return "every account" if self.account_id is None else f"account {self.account.code} only"


class ImportOrigin(models.TextChoices):
    FILE = "file", _("File (import_usage)")
    API = "api", _("HTTP API")
    SEED = "seed", _("Demo data (seed_demo)")


class UsageImport(models.Model):
    """One accepted file or API request: the import log. What it added to
    daily usage is in its UsageImportLine rows. A file's content is
    imported once; an API Idempotency-Key is used once."""

    origin = models.CharField(max_length=8, choices=ImportOrigin.choices, verbose_name=_("origin"))
    name = models.CharField(max_length=500, help_text=_("File path, or the request"), verbose_name=_("name"))
    format = models.CharField(max_length=8, help_text=_("csv, jsonl or json"), verbose_name=_("format"))
    # SHA-256 of the file's bytes, or of the request's records as canonical JSON
    content_sha256 = models.CharField(max_length=64, verbose_name=_("content sha256"))
    # The API's Idempotency-Key, the token's own: unique per token.
    idempotency_key = models.CharField(max_length=200, blank=True, verbose_name=_("idempotency key"))
    token = models.ForeignKey(IngestToken, null=True, blank=True, on_delete=models.PROTECT, related_name="imports",
        verbose_name=_("token"),
    )
    method = models.CharField(max_length=8, help_text=_("copy (PostgreSQL) or simple"), verbose_name=_("method"))
    records = models.PositiveBigIntegerField(default=0, verbose_name=_("records"))
    daily_rows = models.PositiveIntegerField(default=0, help_text=_("daily usage rows added to"),
        verbose_name=_("daily rows"),
    )
    late_rows = models.PositiveIntegerField(default=0, help_text=_("of which in already settled periods"),
        verbose_name=_("late rows"),
    )
    # The API's first answer (JSON text, kept byte for byte), returned again
    # on an Idempotency-Key replay.
    response = models.TextField(blank=True, default="", verbose_name=_("response"))
    imported_at = models.DateTimeField(verbose_name=_("imported at"))

    class Meta:
        verbose_name = _("usage import")
        verbose_name_plural = _("usage imports")
        ordering = ["-imported_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["content_sha256"], condition=Q(origin="file"), name="usage_import_file_once"
            ),
            models.UniqueConstraint(
                fields=["token", "idempotency_key"], condition=~Q(idempotency_key=""),
                name="usage_import_key_once_per_token",
            ),
            # A key belongs to a token (NULLs are distinct in the unique key).
            models.CheckConstraint(condition=Q(idempotency_key="") | Q(token__isnull=False),
                                   name="usage_import_key_has_token"),
        ]

    def __str__(self) -> str:
        return f"Import #{self.pk} ({self.get_origin_display()}: {self.name})"


class UsageImportLine(models.Model):
    """What one import added to one daily usage row. ``late``: the row's
    period was already settled for the account when it arrived, so the
    quantity is billed in the next settlement as an adjustment (§5)."""

    # Lines are written in bulk, once, by usage_import and read per import:
    # only the import is indexed, and no foreign key is checked row by row
    # by the database (a check per row doubled an import's time). They hold
    # the keys of the DailyUsage rows written in the same transaction, whose
    # foreign keys are checked, so they refer to existing rows.
    usage_import = models.ForeignKey(UsageImport, on_delete=models.CASCADE, related_name="lines",
                                     db_constraint=False, verbose_name=_("usage import"))
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+", db_index=False,
                                db_constraint=False, verbose_name=_("account"))
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", db_index=False,
                               db_constraint=False, verbose_name=_("region"))
    service = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="+", db_index=False,
                                db_constraint=False, verbose_name=_("service"))
    result = models.CharField(max_length=16, blank=True, default="", choices=EmailResult.choices,
        verbose_name=_("result"),
    )
    day = models.DateField(help_text=_("UTC+8 billing day"), verbose_name=_("day"))
    # service units, as DailyUsage.quantity
    quantity = models.DecimalField(max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES,
        verbose_name=_("quantity"),
    )
    late = models.BooleanField(default=False, verbose_name=_("late"))

    class Meta:
        verbose_name = _("usage import line")
        verbose_name_plural = _("usage import lines")
        ordering = ["usage_import", "account", "service__position", "region", "result", "day"]

    def __str__(self) -> str:
        result = f"/{self.result}" if self.result else ""
        return f"#{self.usage_import_id} {self.region_id} {self.service_id}{result} {self.day}: {self.quantity}"

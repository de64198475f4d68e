"""Accounts, the people who sign in, their roles, and billing information."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.money import currency_check


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address (stored lower-case)."""

    email = models.EmailField(unique=True, verbose_name=_("email"))
    full_name = models.CharField(max_length=150, blank=True, verbose_name=_("full name"))
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    is_staff = models.BooleanField(default=False, help_text=_("May sign in to Django admin."),
        verbose_name=_("is staff"),
    )
    date_joined = models.DateTimeField(default=timezone.now, verbose_name=_("date joined"))
    # a code of settings.LANGUAGES; "" = no preference (the browser's
    # Accept-Language, else English). Set by the header's language switcher.
    # db_default: rows written by code that predates the column (a rolling deploy) get one too
    language = models.CharField(max_length=16, blank=True, default="", db_default="", choices=settings.LANGUAGES,
                                verbose_name=_("language"))

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name or self.email


class Account(models.Model):
    """A customer account: the unit that is billed."""

    code = models.SlugField(max_length=64, unique=True, help_text=_("Stable key, e.g. acme."), verbose_name=_("code"))
    name = models.CharField(max_length=200, verbose_name=_("name"))
    currency = models.CharField(max_length=3, default="USD", help_text=_("ISO 4217 code."), verbose_name=_("currency"))
    # the language of documents made without a recipient (the archived
    # statement PDF) and of emails to users with no language preference
    document_language = models.CharField(
        max_length=16, default="en", db_default="en", choices=settings.LANGUAGES, verbose_name=_("document language"),
        help_text=_("Language of the archived statement PDF and of emails to users without a preference."))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(currency__regex=r"^[A-Z]{3}$"), name="account_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def clean(self) -> None:
        try:
            currency_check(self.currency)
        except ValueError as exc:
            raise ValidationError({"currency": str(exc)}) from None


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ACCOUNTANT = "accountant", _("Accountant")
    VIEWER = "viewer", _("Viewer")


# What each role may do in the console (interfaces.md, "Roles").
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset({"view", "export", "statements", "repay", "topup", "edit_billing_info", "invoices"}),
    Role.ACCOUNTANT: frozenset({"view", "export", "statements", "repay", "topup", "invoices"}),
    Role.VIEWER: frozenset({"view"}),
}


class Membership(models.Model):
    """A user's role in one account. A user may belong to several accounts."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships",
        verbose_name=_("user"),
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships",
        verbose_name=_("account"),
    )
    role = models.CharField(max_length=16, choices=Role.choices, verbose_name=_("role"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["account__code", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="membership_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.account.code} ({self.role})"

    def can(self, action: str) -> bool:
        return action in ROLE_PERMISSIONS.get(self.role, frozenset())


def license_upload_to(instance: BillingInfo, filename: str) -> str:
    """Random storage name; the uploaded file name is never used."""
    return f"licenses/{uuid.uuid4().hex}"


class VerificationStatus(models.TextChoices):
    PENDING = "pending", pgettext_lazy("verification status", "Pending review")
    VERIFIED = "verified", pgettext_lazy("verification status", "Verified")
    REJECTED = "rejected", pgettext_lazy("verification status", "Rejected")


class BillingInfo(models.Model):
    """Billing information (billing-rules §7): filled in once by the owner,
    then changed only by staff. Every change is a BillingInfoChange row."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="billing_info",
        verbose_name=_("account"),
    )
    contact_name = models.CharField(max_length=100, verbose_name=_("contact name"))
    company_name = models.CharField(max_length=200, verbose_name=_("company name"))
    website = models.URLField(max_length=200, verbose_name=_("website"))
    company_address = models.CharField(max_length=300, verbose_name=_("company address"))
    detailed_address = models.CharField(max_length=300, verbose_name=_("detailed address"))
    license_file = models.FileField(upload_to=license_upload_to, max_length=200, blank=True,
        verbose_name=_("license file"),
    )
    license_content_type = models.CharField(max_length=32, blank=True, verbose_name=_("license content type"))
    license_size = models.PositiveIntegerField(default=0, help_text=_("bytes, as stored"),
        verbose_name=_("license size"),
    )
    license_sha256 = models.CharField(max_length=64, blank=True, verbose_name=_("license sha256"))
    verification_status = models.CharField(
        max_length=16, choices=VerificationStatus.choices, default=VerificationStatus.PENDING,
        verbose_name=_("verification status"),
    )
    rejection_reason = models.CharField(max_length=500, blank=True, verbose_name=_("rejection reason"))
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("submitted by"),
    )
    submitted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("submitted at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("billing information")
        verbose_name_plural = _("billing information")

    def __str__(self) -> str:
        return f"Billing information of {self.account.code}"

    def snapshot(self) -> dict[str, str]:
        """Frozen copy for a bill (statements show it as it was at settlement)."""
        return {
            "contact_name": self.contact_name,
            "company_name": self.company_name,
            "website": self.website,
            "company_address": self.company_address,
            "detailed_address": self.detailed_address,
        }


class BillingInfoChange(models.Model):
    """Append-only history of billing information: who, when, field, old → new."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="billing_info_changes",
        verbose_name=_("account"),
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("changed by"),
    )
    changed_at = models.DateTimeField(default=timezone.now, verbose_name=_("changed at"))
    source = models.CharField(max_length=16, help_text=_("console, admin or provision"), verbose_name=_("source"))
    field = models.CharField(max_length=64, verbose_name=_("field"))
    old_value = models.TextField(blank=True, verbose_name=_("old value"))
    new_value = models.TextField(blank=True, verbose_name=_("new value"))

    class Meta:
        verbose_name = _("billing info change")
        verbose_name_plural = _("billing info changes")
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.account.code}.{self.field} at {self.changed_at:%Y-%m-%d %H:%M}"

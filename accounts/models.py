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

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May sign in to Django admin.")
    date_joined = models.DateTimeField(default=timezone.now)
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
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name or self.email


class Account(models.Model):
    """A customer account: the unit that is billed."""

    code = models.SlugField(max_length=64, unique=True, help_text="Stable key, e.g. acme.")
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217 code.")
    # the language of documents made without a recipient (the archived
    # statement PDF) and of emails to users with no language preference
    document_language = models.CharField(
        max_length=16, default="en", db_default="en", choices=settings.LANGUAGES, verbose_name=_("document language"),
        help_text=_("Language of the archived statement PDF and of emails to users without a preference."))
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
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

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
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
    PENDING = "pending", "Pending review"
    VERIFIED = "verified", "Verified"
    REJECTED = "rejected", "Rejected"


class BillingInfo(models.Model):
    """Billing information (billing-rules §7): filled in once by the owner,
    then changed only by staff. Every change is a BillingInfoChange row."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="billing_info")
    contact_name = models.CharField(max_length=100)
    company_name = models.CharField(max_length=200)
    website = models.URLField(max_length=200)
    company_address = models.CharField(max_length=300)
    detailed_address = models.CharField(max_length=300)
    license_file = models.FileField(upload_to=license_upload_to, max_length=200, blank=True)
    license_content_type = models.CharField(max_length=32, blank=True)
    license_size = models.PositiveIntegerField(default=0, help_text="bytes, as stored")
    license_sha256 = models.CharField(max_length=64, blank=True)
    verification_status = models.CharField(
        max_length=16, choices=VerificationStatus.choices, default=VerificationStatus.PENDING
    )
    rejection_reason = models.CharField(max_length=500, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "billing information"
        verbose_name_plural = "billing information"

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

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="billing_info_changes")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, help_text="console, admin or provision")
    field = models.CharField(max_length=64)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.account.code}.{self.field} at {self.changed_at:%Y-%m-%d %H:%M}"

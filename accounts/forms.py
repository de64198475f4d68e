"""Forms: the owner's billing information form and the staff forms for
Django admin (users by email, billing information with the license)."""
from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import BillingInfo, User, VerificationStatus
from .uploads import (
    LICENSE_FIELD,
    LICENSE_MAX_BYTES,
    REQUIREMENTS,
    license_image_clean,
    license_image_inspect,
    too_large_message,
)

_MAX = {f.name: f.max_length for f in BillingInfo._meta.get_fields() if getattr(f, "max_length", None)}


def clean_website(value: str) -> str:
    """A real http(s) address with a domain name; ``example.com`` gets
    ``https://`` in front. Raises ValidationError with a customer message."""
    value = value.strip()
    if value and "://" not in value:
        value = f"https://{value}"
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise ValidationError(
            _("Enter the company website as a full address, e.g. https://www.example.com."), code="invalid"
        ) from None
    host = (urlsplit(value).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost") or "." not in host or host.replace(".", "").isdigit():
        raise ValidationError(_("Enter the company's public website address with a domain name, "
                                "e.g. https://www.example.com."), code="invalid")
    if len(value) > _MAX["website"]:
        limit = _MAX["website"]
        raise ValidationError(_("The website address may be at most %(limit)d characters.") % {"limit": limit},
                              code="max_length")
    return value


def _text(label, name: str, help_text="", required=None) -> forms.CharField:
    """A text field; ``label``, ``help_text`` and ``required`` (the message)
    are lazy translations, shown in the language of the request."""
    limit = _MAX[name]
    return forms.CharField(
        label=label, max_length=limit, help_text=help_text,
        error_messages={
            "required": required,
            # %(show_value)d is filled in by Django's MaxLengthValidator
            "max_length": format_lazy(gettext_lazy("{label} may be at most {limit} characters "
                                                   "(it has %(show_value)d)."), label=label, limit=limit),
        },
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class LicenseFileField(forms.FileField):
    """Any file; the content is judged in ``clean_license``, not the name."""

    default_error_messages = {
        **forms.FileField.default_error_messages,
        "required": gettext_lazy("Choose the business license image (JPG, JPEG or PNG, at most 2 MB)."),
        "empty": gettext_lazy("The file is empty. Choose a JPG, JPEG or PNG image of the license."),
    }


class LicenseForm(forms.Form):
    """The business license alone: what the owner submits when billing
    information is on file without one (provisioned, or added by staff).

    ``upload_errors`` carries what the upload handler refused while the
    request streamed in (an oversized file). The checks that need only the
    header run in ``clean_license``; the decode runs in ``clean``, and only
    when every other field is valid (issue #15: a decode is the expensive
    part, and a form that fails anyway must not pay for it)."""

    license = LicenseFileField(
        label=gettext_lazy("Business License"), help_text=REQUIREMENTS,
        widget=forms.ClearableFileInput(attrs={"accept": ".jpg,.jpeg,.png,image/jpeg,image/png"}),
    )

    def __init__(self, *args, upload_errors: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.upload_errors = upload_errors or {}
        self.clean_license_image = None
        # The file passed the header checks but was not decoded, because
        # another field failed; the owner has to choose it again anyway.
        self.license_unchecked = False
        self._license_data: bytes | None = None

    def full_clean(self):
        super().full_clean()
        if self.is_bound and LICENSE_FIELD in self.upload_errors:
            self.errors.pop(LICENSE_FIELD, None)
            self.add_error(LICENSE_FIELD, ValidationError(self.upload_errors[LICENSE_FIELD], code="too_large"))

    def clean_license(self):
        upload = self.cleaned_data.get("license")
        if LICENSE_FIELD in self.upload_errors or upload is None:
            return upload
        data = upload.read()
        license_image_inspect(data=data)
        self._license_data = data
        return upload

    def clean(self):
        cleaned = super().clean()
        if self._license_data is not None:
            if self.errors:
                self.license_unchecked = True
            else:
                try:
                    self.clean_license_image = license_image_clean(data=self._license_data)
                except ValidationError as exc:
                    self.add_error(LICENSE_FIELD, exc)
            self._license_data = None
        return cleaned

    @property
    def decoder_busy(self) -> bool:
        """Refused only because every decode slot was taken (answer 503)."""
        return self.has_error(LICENSE_FIELD, code="busy")


class BillingInfoForm(LicenseForm):
    """The owner's one submission: the five text fields and the license."""

    field_order = ("contact_name", "company_name", "website", "company_address", "detailed_address", "license")

    contact_name = _text(gettext_lazy("Contact Name"), "contact_name",
                         gettext_lazy("The person we contact about invoices."),
                         gettext_lazy("Enter the contact name."))
    company_name = _text(gettext_lazy("Company Name"), "company_name",
                         gettext_lazy("As registered, in any script, e.g. 星辰科技有限公司."),
                         gettext_lazy("Enter the company name."))
    website = forms.CharField(label=gettext_lazy("Website"), max_length=_MAX["website"] + 8,
                              help_text=gettext_lazy("e.g. https://www.example.com"),
                              error_messages={"required": gettext_lazy("Enter the company website."),
                                              "max_length": format_lazy(gettext_lazy(
                                                  "The website address may be at most {limit} characters."),
                                                  limit=_MAX["website"])},
                              widget=forms.TextInput(attrs={"inputmode": "url", "autocomplete": "url"}))
    company_address = _text(gettext_lazy("Company Address"), "company_address",
                            gettext_lazy("City, province or state, country."),
                            gettext_lazy("Enter the company address."))
    detailed_address = _text(gettext_lazy("Detailed Address"), "detailed_address",
                             gettext_lazy("Street, building, floor, room."),
                             gettext_lazy("Enter the detailed address."))

    def clean_website(self) -> str:
        return clean_website(self.cleaned_data["website"])

    def values(self) -> dict[str, str]:
        return {key: self.cleaned_data[key] for key in
                ("contact_name", "company_name", "website", "company_address", "detailed_address")}


class BillingInfoAdminForm(forms.ModelForm):
    """Staff edit: text fields, review status, and an optional replacement
    license checked exactly like the customer's upload."""

    website = forms.CharField(label=gettext_lazy("Website"), max_length=_MAX["website"] + 8)
    license_upload = forms.FileField(
        label=gettext_lazy("Replace business license"), required=False,
        help_text=gettext_lazy("JPG, JPEG or PNG, at most 2 MB; decoded and re-encoded without metadata."),
    )

    class Meta:
        model = BillingInfo
        fields = ("account", "contact_name", "company_name", "website", "company_address", "detailed_address",
                  "verification_status", "rejection_reason")
        widgets = {"rejection_reason": forms.Textarea(attrs={"rows": 3, "cols": 60})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clean_license_image = None

    def clean_website(self) -> str:
        return clean_website(self.cleaned_data["website"])

    def clean_license_upload(self):
        upload = self.cleaned_data.get("license_upload")
        if upload:
            if upload.size > LICENSE_MAX_BYTES:
                raise ValidationError(too_large_message(upload.size))
            self.clean_license_image = license_image_clean(data=upload.read())
        return upload

    def clean(self):
        cleaned = super().clean()
        if (cleaned.get("verification_status") == VerificationStatus.REJECTED
                and not (cleaned.get("rejection_reason") or "").strip()):
            self.add_error("rejection_reason", _("Give the reason for the rejection; the customer sees it."))
        return cleaned


class UserCreationForm(BaseUserCreationForm):
    """Admin: a new user by email address (stored lower-case)."""

    class Meta:
        model = User
        fields = ("email", "full_name")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError(_("A user with this email address already exists."), code="unique")
        return email


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("A user with this email address already exists."), code="unique")
        return email

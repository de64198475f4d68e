"""Forms of the usage app (Django admin)."""
from django import forms
from django.utils.translation import gettext_lazy as _

from .models import IngestToken


class IngestTokenCreateForm(forms.ModelForm):
    """Staff name a new ingest token and say which account it writes (none:
    every account); the token itself is generated."""

    class Meta:
        model = IngestToken
        fields = ["name", "account"]
        help_texts = {"name": _("What will send usage with this token, e.g. “delivery platform sg”. "
                                "The token is shown once, after saving."),
                      "account": _("A tenant token writes usage for this account only. Leave empty for a "
                                   "platform token, which writes usage for every account.")}


class IngestTokenChangeForm(forms.ModelForm):
    """Staff change which account a token writes; nothing else of it changes."""

    class Meta:
        model = IngestToken
        fields = ["account"]

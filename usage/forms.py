"""Forms of the usage app (Django admin)."""
from django import forms

from .models import IngestToken


class IngestTokenCreateForm(forms.ModelForm):
    """Staff name a new ingest token; the token itself is generated."""

    class Meta:
        model = IngestToken
        fields = ["name"]
        help_texts = {"name": "What will send usage with this token, e.g. “delivery platform sg”. "
                              "The token is shown once, after saving."}

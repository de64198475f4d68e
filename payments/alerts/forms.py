"""The alert settings form (the owner's): amounts in the account's
currency in core.money's plain grammar, numbers in their ranges."""
from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from core.money import MONEY_DIGITS, MONEY_PLACES, parse_plain_decimal

from ..models import BudgetBasis


class PlainMoneyField(forms.CharField):
    """An amount in the account's currency written plainly (``50`` or
    ``50.00``): core.money's one grammar; empty is None."""

    def __init__(self, **kwargs):
        super().__init__(required=False, max_length=20, **kwargs)

    def clean(self, value):
        text = super().clean(value).strip()
        if not text:
            return None
        try:
            amount = parse_plain_decimal(text, places=MONEY_PLACES, what=_("the amount"))
        except ValueError as exc:
            raise forms.ValidationError(_("Enter an amount such as 50.00 (%(reason)s).") % {"reason": exc}) \
                from None
        if amount >= Decimal(10) ** (MONEY_DIGITS - MONEY_PLACES):
            raise forms.ValidationError(_("Enter an amount below 1,000,000,000,000."))
        return amount


class AlertSettingsForm(forms.Form):
    funds_low_on = forms.BooleanField(required=False, label=_("Funds below a threshold"))
    funds_threshold = PlainMoneyField(label=_("Threshold"))
    budget_on = forms.BooleanField(required=False, label=_("Monthly budget"))
    budget_amount = PlainMoneyField(label=_("Budget"))
    budget_basis = forms.ChoiceField(choices=BudgetBasis.choices, label=_("Compare with"))
    overdrawn_on = forms.BooleanField(required=False, label=_("A period settled Overdrawn"))
    pack_low_on = forms.BooleanField(required=False, label=_("An email pack running low"))
    pack_low_percent = forms.IntegerField(min_value=1, max_value=99, label=_("Percent left"))
    pack_expiring_on = forms.BooleanField(required=False, label=_("An email pack expiring"))
    pack_expiring_days = forms.IntegerField(min_value=1, max_value=365, label=_("Days before"))
    wire_waiting_on = forms.BooleanField(required=False, label=_("A wire transfer awaited"))
    wire_waiting_days = forms.IntegerField(min_value=1, max_value=365, label=_("Days waiting"))

    def __init__(self, *args, currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        for name in ("funds_threshold", "budget_amount"):
            self.fields[name].help_text = _("In %(currency)s.") % {"currency": currency}

    def clean(self):
        data = super().clean()
        if data.get("funds_low_on") and data.get("funds_threshold") is None and "funds_threshold" not in self.errors:
            self.add_error("funds_threshold", _("Enter the threshold to alert below."))
        if data.get("budget_on") and "budget_amount" not in self.errors:
            if data.get("budget_amount") is None:
                self.add_error("budget_amount", _("Enter the budget to alert above."))
            elif data["budget_amount"] <= 0:
                self.add_error("budget_amount", _("The budget must be greater than 0."))
        return data

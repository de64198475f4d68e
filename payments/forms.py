"""Forms of the pay pages.

The repay form carries the breakdown shown to the payer as a signed token
(line ids and balances, the account and the idempotency key), so what is
paid is exactly what was shown, and a double submit of one page carries one
idempotency key.
"""
from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.core import signing
from django.utils.translation import gettext_lazy

from .providers import PaymentProvider
from .selectors import Due
from .services import FrozenLine

BREAKDOWN_SALT = "payments.repay.breakdown"
# A repay page older than this must be reopened (its breakdown may be stale).
BREAKDOWN_MAX_AGE_SECONDS = 12 * 3600


def breakdown_token_make(*, account_id: int, due: Due) -> str:
    data = {"a": account_id, "k": uuid.uuid4().hex, "l": [[d.line_id, f"{d.balance:.2f}"] for d in due.lines]}
    return signing.dumps(data, salt=BREAKDOWN_SALT, compress=True)


def _method_field(providers: list[PaymentProvider]) -> forms.ChoiceField:
    return forms.ChoiceField(
        label="Payment method", widget=forms.RadioSelect,
        choices=[(p.code, p.label) for p in providers],
        initial=providers[0].code if len(providers) == 1 else None,
        error_messages={"required": "Choose a payment method.",
                        "invalid_choice": "Choose one of the payment methods offered."},
    )


class RepayForm(forms.Form):
    breakdown = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, account_id: int, providers: list[PaymentProvider], **kwargs):
        super().__init__(*args, **kwargs)
        self.account_id = account_id
        self.fields["method"] = _method_field(providers)

    def clean_breakdown(self) -> dict:
        try:
            data = signing.loads(self.cleaned_data["breakdown"], salt=BREAKDOWN_SALT,
                                 max_age=BREAKDOWN_MAX_AGE_SECONDS)
        except signing.SignatureExpired:
            raise forms.ValidationError("This page was opened too long ago. Review the amount due again.") from None
        except signing.BadSignature:
            raise forms.ValidationError("The breakdown could not be read. Reload the page.") from None
        if data.get("a") != self.account_id:
            raise forms.ValidationError("This breakdown belongs to another account. Reload the page.")
        try:
            lines = [FrozenLine(line_id=int(i), balance=Decimal(b)) for i, b in data["l"]]
        except (KeyError, TypeError, ValueError, InvalidOperation):
            raise forms.ValidationError("The breakdown could not be read. Reload the page.") from None
        if not lines:
            raise forms.ValidationError("Nothing is due.")
        return {"key": str(data["k"]), "lines": lines}


class TopupForm(forms.Form):
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)
    amount = forms.DecimalField(
        label="Amount", max_digits=14, decimal_places=2,
        error_messages={"max_decimal_places": "Use at most 2 decimal places (cents).",
                        "invalid": "Enter an amount such as 100.00."},
    )

    def __init__(self, *args, providers: list[PaymentProvider], currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["method"] = _method_field(providers)
        self.minimum = Decimal(settings.PAYMENTS_TOPUP_MIN)
        self.maximum = Decimal(settings.PAYMENTS_TOPUP_MAX)
        self.fields["amount"].label = f"Amount ({currency})"
        self.fields["amount"].help_text = f"From {self.minimum:,.2f} to {self.maximum:,.2f} {currency}."
        self.fields["amount"].widget.attrs.update({"min": f"{self.minimum}", "max": f"{self.maximum}",
                                                   "step": "0.01", "inputmode": "decimal"})
        self.currency = currency

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if not amount.is_finite():
            raise forms.ValidationError("Enter an amount such as 100.00.")
        if amount < self.minimum or amount > self.maximum:
            raise forms.ValidationError(
                f"Choose an amount from {self.minimum:,.2f} to {self.maximum:,.2f} {self.currency}."
            )
        return amount


class SandboxCheckoutForm(forms.Form):
    action = forms.ChoiceField(choices=[("approve", "Approve"), ("decline", "Decline"), ("abandon", "Cancel")])


class WireConfirmForm(forms.Form):
    amount = forms.DecimalField(label=gettext_lazy("Amount received"), max_digits=14, decimal_places=2,
                                min_value=Decimal("0.01"))
    currency = forms.CharField(label=gettext_lazy("Currency"), max_length=3, min_length=3)
    bank_reference = forms.CharField(
        label=gettext_lazy("Bank reference of the transfer"), max_length=128,
        help_text=gettext_lazy("As shown on the bank statement; a transfer can be booked once."),
    )

    def clean_currency(self) -> str:
        return self.cleaned_data["currency"].upper()

"""The tax invoice request form (docs/tax-invoices.md)."""
from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import InvoiceKind
from .tax_invoices import InvoiceableBill, invoice_details_check


class InvoiceRequestForm(forms.Form):
    bills = forms.TypedMultipleChoiceField(coerce=int, widget=forms.CheckboxSelectMultiple,
                                           label=_("Paid bills to invoice"),
                                           error_messages={"required": _("Choose at least one paid bill.")})
    kind = forms.ChoiceField(choices=InvoiceKind.choices, label=_("Invoice type"), widget=forms.RadioSelect)
    title = forms.CharField(max_length=200, label=_("Invoice title (发票抬头)"),
                            help_text=_("The buyer's full legal name."))
    taxpayer_id = forms.CharField(max_length=20, required=False, label=_("Taxpayer ID (纳税人识别号) or VAT number"),
                                  help_text=_("VAT invoices: the 18-character unified social credit code."))
    address_phone = forms.CharField(max_length=300, required=False, label=_("Registered address and phone"),
                                    help_text=_("Special VAT and commercial invoices."))
    bank_account = forms.CharField(max_length=300, required=False, label=_("Bank and account number"),
                                   help_text=_("Special VAT invoices."))
    email = forms.EmailField(label=_("Send the invoice to"))

    def __init__(self, *args, invoiceable: list[InvoiceableBill], currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["bills"].choices = [
            (item.bill.pk, f"{item.bill.period} · {item.paid} {currency}") for item in invoiceable]

    def clean_taxpayer_id(self) -> str:
        return self.cleaned_data["taxpayer_id"].strip().upper()

    def clean(self):
        data = super().clean()
        if "kind" in data and "title" in data:
            for field, error in invoice_details_check(
                    kind=data["kind"], title=data["title"], taxpayer_id=data.get("taxpayer_id", ""),
                    address_phone=data.get("address_phone", ""), bank_account=data.get("bank_account", "")).items():
                self.add_error(field, error)
        return data

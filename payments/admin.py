"""Staff admin for the funds ledger and payments.

The ledger is append-only: staff may record a top-up (booked once per
reference), nothing else is added, changed or deleted here. Payments are
read-only with their frozen lines and their audit trail; the one staff
action is confirming a received wire transfer, which completes the payment
through the same service as a provider callback.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.admin import ReadOnlyAdmin

from .forms import WireConfirmForm
from .models import EntryKind, LedgerEntry, Payment, PaymentEvent, PaymentLine, PaymentMethod, PaymentStatus
from .services import ConfirmResult, PaymentError, topup_record, wire_confirm


class TopupAdminForm(forms.ModelForm):
    class Meta:
        model = LedgerEntry
        fields = ("account", "amount", "reference", "at", "memo")
        help_texts = {"reference": _("Unique per account, e.g. the bank's reference: a reference is booked once."),
                      "amount": _("Currency units of the account; greater than 0.")}

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount is None or amount <= 0:
            raise forms.ValidationError(gettext("A top-up must be greater than 0."))
        return amount

    def clean_reference(self):
        reference = self.cleaned_data["reference"].strip()
        if not reference:
            raise forms.ValidationError(gettext("A top-up needs a reference (it makes booking idempotent)."))
        return reference


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "account", "kind", "amount", "currency", "reference", "line", "memo")
    list_filter = ("kind", "currency")
    search_fields = ("account__code", "reference", "memo")
    date_hierarchy = "at"
    list_select_related = ("account", "line")
    readonly_fields = ("account", "kind", "amount", "currency", "at", "reference", "line", "memo", "created_by",
                       "created_at")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = TopupAdminForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        return TopupAdminForm.Meta.fields if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        entry, created = topup_record(account=obj.account, amount=obj.amount, reference=obj.reference, at=obj.at,
                                      created_by=request.user, memo=obj.memo or "recorded by staff")
        obj.pk = entry.pk
        if not created:
            messages.warning(request, gettext("Top-up %(reference)s was already booked (%(amount)s %(currency)s); "
                                              "nothing was added.") % {
                "reference": repr(entry.reference), "amount": entry.amount, "currency": entry.currency})

    def get_changeform_initial_data(self, request):
        return {"at": timezone.now(), "kind": EntryKind.TOPUP}


class PaymentLineInline(admin.TabularInline):
    model = PaymentLine
    fields = ("line", "balance", "line_status")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description=_("line status now"))
    def line_status(self, obj):
        return obj.line.status

    def has_add_permission(self, request, obj=None):
        return False


class PaymentEventInline(admin.TabularInline):
    model = PaymentEvent
    fields = ("at", "kind", "message", "payload")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("at", "id")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("reference", "account", "purpose", "method", "status", "amount", "currency", "created_at",
                    "completed_at", "credited_to_funds")
    list_filter = ("status", "method", "purpose", "credited_to_funds")
    search_fields = ("reference", "account__code", "account__name", "provider_transaction_id", "public_id")
    date_hierarchy = "created_at"
    list_select_related = ("account",)
    inlines = (PaymentLineInline, PaymentEventInline)
    fields = ("reference", "wire_action", "public_id", "account", "purpose", "method", "status", "status_reason",
              "amount", "currency", "provider_transaction_id", "provider_order_id", "credited_to_funds",
              "idempotency_key", "created_by", "created_at", "completed_at", "confirmed_by", "receipt_sent_at")
    readonly_fields = fields

    @admin.display(description=_("Wire transfer"))
    def wire_action(self, obj):
        if not self._wire_confirmable(obj):
            return "—"
        url = reverse("admin:payments_payment_confirm_wire", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, gettext("Confirm receipt of the transfer…"))

    @staticmethod
    def _wire_confirmable(obj) -> bool:
        return obj is not None and obj.method == PaymentMethod.WIRE and obj.status != PaymentStatus.SUCCEEDED

    def get_urls(self):
        extra = [path("<int:pk>/confirm-wire/", self.admin_site.admin_view(self.confirm_wire_view),
                      name="payments_payment_confirm_wire")]
        return extra + super().get_urls()

    def confirm_wire_view(self, request, pk: int):
        if not request.user.has_perm("payments.change_payment"):
            raise PermissionDenied
        payment = get_object_or_404(Payment.objects.select_related("account"), pk=pk)
        change_url = reverse("admin:payments_payment_change", args=[payment.pk])
        if not self._wire_confirmable(payment):
            messages.warning(request, gettext("%(reference)s is not a wire transfer awaiting confirmation.")
                             % {"reference": payment.reference})
            return redirect(change_url)
        if request.method == "POST":
            form = WireConfirmForm(request.POST)
            if form.is_valid():
                try:
                    result = wire_confirm(payment=payment, amount=form.cleaned_data["amount"],
                                          currency=form.cleaned_data["currency"],
                                          bank_reference=form.cleaned_data["bank_reference"],
                                          staff_user=request.user, now=timezone.now())
                except PaymentError as exc:
                    form.add_error(None, str(exc))
                else:
                    payment.refresh_from_db()
                    if result == ConfirmResult.APPLIED:
                        note = f" {payment.status_reason}." if payment.credited_to_funds else ""
                        messages.success(request, gettext(
                            "%(reference)s: %(amount)s %(currency)s received; the repayment is complete.") % {
                            "reference": payment.reference, "amount": payment.amount,
                            "currency": payment.currency} + note)
                    else:
                        messages.info(request, gettext("%(reference)s was already confirmed; nothing changed.")
                                      % {"reference": payment.reference})
                    return redirect(change_url)
        else:
            form = WireConfirmForm(initial={"amount": payment.amount, "currency": payment.currency})
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "payment": payment, "form": form,
            "title": gettext("Confirm wire transfer %(reference)s") % {"reference": payment.reference},
            "change_url": change_url,
            "lines": payment.lines.select_related("line__bill", "line__service", "line__region"),
        }
        return TemplateResponse(request, "payments/admin_wire_confirm.html", context)

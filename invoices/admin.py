"""Staff admin for bills, lines, pack deductions and statements.

Everything here is read-only: bills change only through settlement and
repayments. Staff actions: download a statement's archived PDF (the
issue-time bytes; its SHA-256 and whether the file still matches it are on
the statement's page),
email statements again, the all-accounts CSV export (a link on the
bills list, streamed like ``export_billing``), and deciding tax invoice
requests (issue with number, date and file, or reject with a reason).
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.admin import ReadOnlyAdmin
from core.periods import Period, PeriodError

from .export import export_periods, staff_export_csv
from .models import Bill, BillLine, InvoiceRequest, InvoiceRequestBill, InvoiceStatus, PackDeduction, Statement
from .statements import (
    StatementEmailError,
    statement_archive_check,
    statement_email_send,
    statement_filename,
)
from .tax_invoices import InvoiceRequestError, invoice_file_check, invoice_request_issue, invoice_request_reject
from .views import csv_response


class BillLineInline(admin.TabularInline):
    model = BillLine
    fields = ("position", "service", "region", "adjustment_for", "usage_quantity", "deducted_quantity",
              "billable_quantity", "unit_price", "amount", "paid", "balance", "status")
    readonly_fields = fields
    ordering = ("position",)
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _pdf_link(statement: Statement | None):
    if statement is None or not statement.pdf:
        return "—"
    url = reverse("admin:invoices_statement_pdf", args=[statement.pk])
    return format_html('<a href="{}">{}</a>', url, statement.number)


@admin.register(Bill)
class BillAdmin(ReadOnlyAdmin):
    list_display = ("account", "period", "currency", "total_amount", "funds_applied", "settled_at", "statement_pdf")
    list_filter = ("period", "currency")
    search_fields = ("account__code", "account__name", "period")
    list_select_related = ("account", "statement")
    readonly_fields = ("account", "period", "currency", "settled_at", "total_amount", "funds_applied",
                       "billing_info_snapshot", "statement_pdf")
    inlines = [BillLineInline]
    change_list_template = "invoices/admin_bill_change_list.html"

    @admin.display(description=_("statement"))
    def statement_pdf(self, obj):
        return _pdf_link(getattr(obj, "statement", None))

    def get_urls(self):
        export = path("export.csv", self.admin_site.admin_view(self.export_view), name="invoices_bill_export")
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        previous = Period.current(timezone.now()).previous()
        extra_context = {**(extra_context or {}), "export_default_period": str(previous)}
        return super().changelist_view(request, extra_context=extra_context)

    def export_view(self, request):
        """Every account's settled lines, ``?period=YYYY-MM[&to=YYYY-MM]``."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        first, last = request.GET.get("period", "").strip(), request.GET.get("to", "").strip() or None
        try:
            periods = export_periods(first=first, last=last, now=timezone.now(), max_periods=None)
        except PeriodError as exc:
            self.message_user(request, gettext("Export: %(error)s") % {"error": exc}, messages.ERROR)
            return redirect("admin:invoices_bill_changelist")
        span = str(periods[0]) if len(periods) == 1 else f"{periods[0]}_{periods[-1]}"
        return csv_response(staff_export_csv(first=periods[0], last=periods[-1]),
                            f"aurora-billing-all-accounts-{span}.csv")


@admin.register(BillLine)
class BillLineAdmin(ReadOnlyAdmin):
    list_display = ("bill", "service", "region", "adjustment_for", "billable_quantity", "unit_price", "amount",
                    "paid", "balance", "status")
    list_filter = ("status", "service", "region", "bill__period")
    search_fields = ("bill__account__code", "bill__period")
    list_select_related = ("bill__account", "service", "region")


@admin.register(PackDeduction)
class PackDeductionAdmin(ReadOnlyAdmin):
    list_display = ("day", "pack", "quantity", "line")
    list_filter = ("day",)
    search_fields = ("pack__reference", "line__bill__account__code")
    list_select_related = ("pack", "line__bill__account", "line__service", "line__region")


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    list_display = ("number", "account", "period", "issued_at", "emailed_at", "email_attempts", "last_email_error",
                    "download", "checksum")
    list_filter = ("bill__period", ("emailed_at", admin.EmptyFieldListFilter))
    search_fields = ("number", "sha256", "bill__account__code", "bill__account__name")
    list_select_related = ("bill__account",)
    readonly_fields = ("number", "bill", "issued_at", "download", "sha256", "archive_check", "issued_lines",
                       "emailed_at", "email_recipients", "email_attempts", "last_email_error")
    exclude = ("pdf",)
    actions = ["email_again"]

    @admin.display(description=_("account"), ordering="bill__account__code")
    def account(self, obj):
        return obj.bill.account

    @admin.display(description=_("period"), ordering="bill__period")
    def period(self, obj):
        return obj.bill.period

    @admin.display(description=_("archived PDF (as issued)"))
    def download(self, obj):
        return _pdf_link(obj)

    @admin.display(description=_("SHA-256"))
    def checksum(self, obj):
        return format_html('<code title="{}">{}…</code>', obj.sha256, obj.sha256[:12]) if obj.sha256 else "—"

    @admin.display(description=_("archive check"))
    def archive_check(self, obj):
        """Reads the archived file and compares it with the recorded SHA-256."""
        check = statement_archive_check(statement=obj)
        return format_html('<strong style="color:{}">{}</strong>', "#1d6b35" if check.ok else "#a3261b",
                           check.message)

    def has_resend_permission(self, request):
        return request.user.has_perm("invoices.change_statement")

    @admin.action(description=_("Email the selected statements again"), permissions=["resend"])
    def email_again(self, request, queryset):
        now = timezone.now()
        sent, problems = 0, []
        for statement in queryset.select_related("bill__account"):
            try:
                outcome = statement_email_send(statement=statement, now=now, resend=True)
            except StatementEmailError as exc:
                problems.append(f"{statement.number}: {exc}")
                continue
            if outcome.sent:
                sent += 1
            else:
                problems.append(f"{statement.number}: {outcome.reason}")
        if sent:
            self.message_user(request, gettext("%(count)s statement(s) emailed.") % {"count": sent}, messages.SUCCESS)
        for problem in problems:
            self.message_user(request, gettext("Not emailed: %(problem)s") % {"problem": problem}, messages.ERROR)

    def get_urls(self):
        pdf = path("<int:pk>/pdf/", self.admin_site.admin_view(self.pdf_view), name="invoices_statement_pdf")
        return [pdf, *super().get_urls()]

    def pdf_view(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        statement = get_object_or_404(Statement.objects.select_related("bill__account"), pk=pk)
        if not statement.pdf:
            raise Http404(gettext("This statement has no stored PDF."))
        return FileResponse(statement.pdf.open("rb"), content_type="application/pdf",
                            filename=statement_filename(statement=statement))


# --- tax invoices ----------------------------------------------------------

class InvoiceDecisionForm(forms.ModelForm):
    """Staff decide a request: issue it (number, date, optionally the file)
    or reject it with a reason. Saved through the services, never directly."""

    decision = forms.ChoiceField(choices=[("", "—"), ("issue", _("Issue the invoice")), ("reject", _("Reject"))],
                                 required=False, label=_("Decision"))
    upload = forms.FileField(required=False, label=_("Invoice file"),
                             help_text=_("PDF, JPG or PNG, at most 5 MB (stored privately)"))

    class Meta:
        model = InvoiceRequest
        fields = ("invoice_number", "invoice_date", "rejected_reason")

    def clean(self):
        data = super().clean()
        decision = data.get("decision")
        if decision == "issue":
            if not data.get("invoice_number", "").strip():
                self.add_error("invoice_number", gettext("Enter the invoice number."))
            if not data.get("invoice_date"):
                self.add_error("invoice_date", gettext("Enter the invoice date."))
            if data.get("upload") is not None:
                try:
                    invoice_file_check(data["upload"])
                except InvoiceRequestError as exc:
                    self.add_error("upload", str(exc))
        elif decision == "reject" and not data.get("rejected_reason", "").strip():
            self.add_error("rejected_reason", gettext("Give the reason; the customer reads it."))
        return data


class InvoiceRequestBillInline(admin.TabularInline):
    model = InvoiceRequestBill
    fields = ("bill", "amount", "active")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(InvoiceRequest)
class InvoiceRequestAdmin(admin.ModelAdmin):
    """Requests arrive from the console; staff with change permission decide
    them here (issue or reject). Everything else is read-only."""

    form = InvoiceDecisionForm
    list_display = ("requested_at", "account", "kind", "title", "amount", "currency", "status", "invoice_number")
    list_filter = ("status", "kind")
    search_fields = ("account__code", "title", "taxpayer_id", "invoice_number")
    list_select_related = ("account",)
    inlines = [InvoiceRequestBillInline]
    request_fields = ("public_id", "account", "requested_by", "requested_at", "kind", "title", "taxpayer_id",
                      "address_phone", "bank_account", "email", "amount", "currency", "billing_info_snapshot",
                      "status", "decided_at", "decided_by")
    decision_fields = ("invoice_number", "invoice_date", "rejected_reason", "invoice_file", "decision_emailed_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _decided(self, obj) -> bool:
        return obj is not None and obj.status != InvoiceStatus.REQUESTED

    def get_fields(self, request, obj=None):
        if self._decided(obj):
            return [*self.request_fields, *self.decision_fields]
        return [*self.request_fields, "decision", "invoice_number", "invoice_date", "upload", "rejected_reason"]

    def get_readonly_fields(self, request, obj=None):
        if self._decided(obj):
            return [*self.request_fields, *self.decision_fields]
        return list(self.request_fields)

    def save_model(self, request, obj, form, change):
        decision = form.cleaned_data.get("decision")
        original = InvoiceRequest.objects.get(pk=obj.pk)
        try:
            if decision == "issue":
                invoice_request_issue(request=original, number=form.cleaned_data["invoice_number"],
                                      date=form.cleaned_data["invoice_date"], upload=form.cleaned_data.get("upload"),
                                      staff_user=request.user, now=timezone.now())
                messages.success(request, gettext("Invoice recorded; the customer is emailed."))
            elif decision == "reject":
                invoice_request_reject(request=original, reason=form.cleaned_data["rejected_reason"],
                                       staff_user=request.user, now=timezone.now())
                messages.success(request, gettext("Request rejected; the customer is emailed."))
        except InvoiceRequestError as exc:
            messages.error(request, str(exc))

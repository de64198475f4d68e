from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.admin import AccountAdmin as BaseAccountAdmin
from accounts.admin import ReadOnlyAdmin
from accounts.models import Account
from core.models import AuditEvent
from core.periods import Period, PeriodError

from .settlement import PeriodNotDue, accounts_settle

# Every time in admin is UTC+8 (aurora_billing.middleware.BillingTimeZoneMiddleware).
admin.site.site_header = _("Aurora SendCloud billing administration · times in UTC+8")
admin.site.index_title = _("Billing administration (all times UTC+8)")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the audit log is append-only."""

    list_display = ("at", "action", "account", "actor_label", "summary")
    list_filter = ("action",)
    search_fields = ("summary", "actor_label", "account__code", "object_id")
    date_hierarchy = "at"
    list_select_related = ("account",)


# --- Settlement actions on accounts -----------------------------------------
# The account admin lives in accounts/admin.py; settlement orchestration
# lives here (accounts must not import it), so the actions are added by
# extending that admin. aurora_billing is the last installed app, so the
# account admin is registered by the time this module loads.


class SettlePeriodForm(forms.Form):
    period = forms.CharField(max_length=7, label=_("Period"), help_text=_("YYYY-MM; its bill time must have passed"))

    def clean_period(self):
        try:
            return Period.parse(self.cleaned_data["period"])
        except PeriodError as exc:
            raise forms.ValidationError(str(exc)) from None


def _report(request, reports) -> None:
    settled = sum(len(r.settled) for r in reports)
    already = sum(len(r.already) for r in reports)
    errors = [e for r in reports for e in r.errors]
    messages.success(request, gettext("%(settled)s bill(s) created, %(already)s period(s) already settled.")
                     % {"settled": settled, "already": already})
    for error in errors:
        messages.error(request, error)


admin.site.unregister(Account)


@admin.register(Account)
class AccountAdmin(BaseAccountAdmin):
    actions = ["settle_due", "settle_period"]

    @admin.action(description=_("Settle every due period now (catch-up)"), permissions=["settle"])
    def settle_due(self, request, queryset):
        now = timezone.now()
        _report(request, [accounts_settle(account_ids=[account.pk], now=now) for account in queryset])

    @admin.action(description=_("Settle a period…"), permissions=["settle"])
    def settle_period(self, request, queryset):
        form = SettlePeriodForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            now = timezone.now()
            try:
                _report(request, [accounts_settle(account_ids=[a.pk], now=now, period=form.cleaned_data["period"])
                                  for a in queryset])
            except PeriodNotDue as exc:
                messages.error(request, str(exc))
            return None
        return TemplateResponse(request, "admin/aurora_billing/settle_period.html", {
            **self.admin_site.each_context(request), "title": gettext("Settle a period"), "form": form,
            "accounts": queryset, "action": "settle_period", "opts": self.model._meta,
        })

    def has_settle_permission(self, request) -> bool:
        """Finance staff: settlement writes bills, so it needs the right to add them."""
        return request.user.has_perm("invoices.add_bill")

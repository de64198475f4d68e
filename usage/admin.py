"""Django admin for staff: regions, prices and email packs; daily usage and
the import log (read-only: usage enters only through usage_import); ingest
tokens (created with the token shown once, revoked by an action)."""
from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.admin import ReadOnlyAdmin
from core.money import format_quantity

from .forms import IngestTokenChangeForm, IngestTokenCreateForm
from .models import DailyUsage, EmailPack, IngestToken, Price, Region, ServiceItem, UsageImport, UsageImportLine
from .selectors import usage_import_totals
from .services import ingest_token_create, ingest_token_revoke, ingest_token_set_account


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")

    def get_readonly_fields(self, request, obj=None):
        return ("code",) if obj else ()


@admin.register(ServiceItem)
class ServiceItemAdmin(ReadOnlyAdmin):
    list_display = ("code", "name", "unit", "position")


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ("service", "region", "unit_price", "currency", "effective_from")
    list_filter = ("service", "region", "currency")
    date_hierarchy = "effective_from"


@admin.register(EmailPack)
class EmailPackAdmin(admin.ModelAdmin):
    list_display = ("reference", "account", "region", "quantity", "valid_from", "valid_until")
    list_filter = ("region",)
    search_fields = ("reference", "account__code", "account__name")
    autocomplete_fields = ("account",)
    list_select_related = ("account", "region")


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ("day", "account", "region", "service", "result", "quantity", "billed_quantity", "updated_at")
    list_filter = ("service", "region", "result")
    search_fields = ("account__code", "account__name")
    date_hierarchy = "day"
    list_select_related = ("account",)


@admin.register(UsageImport)
class UsageImportAdmin(ReadOnlyAdmin):
    list_display = ("id", "imported_at", "origin", "name", "records", "daily_rows", "late_rows", "token")
    list_filter = ("origin", "method")
    search_fields = ("name", "content_sha256", "idempotency_key")
    date_hierarchy = "imported_at"
    list_select_related = ("token",)
    fields = ("imported_at", "origin", "name", "format", "method", "token", "idempotency_key", "content_sha256",
              "records", "daily_rows", "late_rows", "quantities", "response")

    @admin.display(description=_("Quantities added"))
    def quantities(self, obj: UsageImport):
        totals = usage_import_totals(usage_import=obj)
        if not totals:
            return "—"
        url = reverse("admin:usage_usageimportline_changelist") + f"?usage_import__id__exact={obj.pk}"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td style='text-align:right'>{}</td><td>{}</td><td>{}</td></tr>",
            ((t["service_id"], t["region_id"], format_quantity(t["quantity"]), t["rows"],
              gettext("late (settled period)") if t["late"] else "") for t in totals),
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th>"
            "</tr></thead><tbody>{}</tbody></table><p><a href='{}'>{}</a></p>",
            gettext("Service"), gettext("Region"), gettext("Quantity"), gettext("Daily rows"), rows, url,
            gettext("Every daily row of this import"))


@admin.register(UsageImportLine)
class UsageImportLineAdmin(ReadOnlyAdmin):
    list_display = ("usage_import", "account", "region", "service", "result", "day", "quantity", "late")
    list_filter = ("late", "service", "region")
    search_fields = ("account__code",)
    date_hierarchy = "day"
    list_select_related = ("usage_import", "account")


@admin.register(IngestToken)
class IngestTokenAdmin(admin.ModelAdmin):
    """Created with a name and the account it writes (none: every account);
    afterwards only that account can change, through
    ``ingest_token_set_account``."""

    form = IngestTokenCreateForm
    list_display = ("name", "prefix", "writes", "created_at", "created_by", "last_used_at", "status")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), ("account", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix", "account__code")
    list_select_related = ("account", "created_by")
    autocomplete_fields = ("account",)
    actions = ["revoke"]
    readonly_fields = ("name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at", "revoked_by")

    @admin.display(description=_("Writes usage for"), ordering="account__code")
    def writes(self, obj: IngestToken) -> str:
        return gettext("every account (platform)") if obj.account_id is None else obj.account.code

    @admin.display(description=_("Status"))
    def status(self, obj: IngestToken) -> str:
        if obj.is_active:
            return gettext("active")
        return gettext("revoked %(at)s UTC") % {"at": f"{obj.revoked_at:%Y-%m-%d %H:%M}"}

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["form"] = IngestTokenChangeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else ()

    def get_fields(self, request, obj=None):
        return ("name", "account", *self.readonly_fields[1:]) if obj else ("name", "account")

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the import log refers to tokens

    def save_model(self, request, obj, form, change):
        if change:
            stored = IngestToken.objects.get(pk=obj.pk)
            ingest_token_set_account(token=stored, account=form.cleaned_data["account"], changed_by=request.user)
            return
        token, raw = ingest_token_create(name=form.cleaned_data["name"], account=form.cleaned_data["account"],
                                         created_by=request.user, now=timezone.now())
        obj.pk = token.pk
        obj.refresh_from_db()
        request._ingest_token_raw = raw  # for response_add only; never stored

    def response_add(self, request, obj, post_url_continue=None):
        response = TemplateResponse(request, "admin/usage/ingesttoken/created.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "token": obj,
            "raw_token": request._ingest_token_raw,
            "api_url": settings.SITE_URL + reverse("usage_ingest"),
            "title": gettext("Ingest token created"),
        })
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke selected ingest tokens"))
    def revoke(self, request, queryset):
        now = timezone.now()
        revoked = sum(ingest_token_revoke(token=token, revoked_by=request.user, now=now) for token in queryset)
        self.message_user(request, gettext("%(count)s ingest token(s) revoked; requests with them now answer 401.")
                          % {"count": revoked}, messages.SUCCESS)

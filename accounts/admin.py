"""Django admin for staff: users (by email), accounts and memberships, and
billing information with the license preview, verification status and the
read-only change history (billing-rules §7)."""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .forms import BillingInfoAdminForm, UserChangeForm, UserCreationForm
from .models import Account, BillingInfo, BillingInfoChange, Membership, User
from .selectors import billing_info_history
from .services import BILLING_INFO_REVIEW_FIELDS, BILLING_INFO_TEXT_FIELDS, BillingInfoError, billing_info_staff_save
from .views import license_response


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


class UserMembershipInline(MembershipInline):
    autocomplete_fields = ("account",)
    fields = ("account", "role", "created_at")


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and money records: staff read them, nobody edits them here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = ("email", "full_name", "is_active", "is_staff", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
    search_fields = ("email", "full_name")
    readonly_fields = ("last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal"), {"fields": ("full_name",)}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "full_name", "password1", "password2")}),
    )
    inlines = (UserMembershipInline,)

    def get_inlines(self, request, obj):
        # Memberships are added once the user exists (the add form is email and password only).
        return self.inlines if obj is not None else ()


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "currency", "billing_info_status", "created_at")
    search_fields = ("code", "name")
    readonly_fields = ("created_at",)
    inlines = (MembershipInline,)
    list_select_related = ("billing_info",)

    @admin.display(description=_("Billing information"))
    def billing_info_status(self, obj: Account) -> str:
        info = getattr(obj, "billing_info", None)
        return info.get_verification_status_display() if info else "—"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("billing_info")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("account", "user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("account__code", "account__name", "user__email")
    autocomplete_fields = ("user", "account")
    list_select_related = ("account", "user")


@admin.register(BillingInfo)
class BillingInfoAdmin(admin.ModelAdmin):
    """Staff edit billing information here; every change goes through
    ``billing_info_staff_save`` and is recorded with who, when, old → new."""

    form = BillingInfoAdminForm
    list_display = ("account", "company_name", "contact_name", "verification_status", "submitted_at")
    list_filter = ("verification_status",)
    search_fields = ("account__code", "account__name", "company_name", "contact_name")
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    readonly_fields = ("license_preview", "license_details", "submitted_by", "submitted_at", "updated_at",
                       "change_history")
    fieldsets = (
        (None, {"fields": ("account",)}),
        (_("Billing information"), {"fields": BILLING_INFO_TEXT_FIELDS}),
        (_("Business license"), {"fields": ("license_preview", "license_details", "license_upload")}),
        (_("Verification (shown to the customer)"), {"fields": BILLING_INFO_REVIEW_FIELDS}),
        (_("Submission"), {"fields": ("submitted_by", "submitted_at", "updated_at")}),
        (_("Change history"), {"fields": ("change_history",)}),
    )

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("account")
        return fields

    def get_urls(self):
        urls = [
            path("<int:pk>/license/", self.admin_site.admin_view(self.license_view),
                 name="accounts_billinginfo_license"),
        ]
        return urls + super().get_urls()

    def license_view(self, request, pk: int):
        """The stored license, for staff who may view billing information."""
        info = get_object_or_404(BillingInfo.objects.select_related("account"), pk=pk)
        if not self.has_view_permission(request, info):
            raise PermissionDenied
        if not info.license_file:
            raise Http404(gettext("No business license on file."))
        return license_response(info)

    @admin.display(description=_("License"))
    def license_preview(self, obj: BillingInfo):
        if not obj or not obj.pk or not obj.license_file:
            return gettext("No license on file.")
        url = reverse("admin:accounts_billinginfo_license", args=[obj.pk]) + f"?v={obj.license_sha256[:12]}"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener"><img src="{}" alt="{}" '
            'style="max-width:480px;max-height:480px;border:1px solid #ccc"></a><br>'
            '<a href="{}" target="_blank" rel="noopener">{}</a>',
            url, url, gettext("Business license"), url, gettext("Open full size"),
        )

    @admin.display(description=_("Stored file"))
    def license_details(self, obj: BillingInfo) -> str:
        if not obj or not obj.license_file:
            return "—"
        return gettext("%(type)s, %(size)s bytes, sha256 %(sha256)s") % {
            "type": obj.license_content_type, "size": f"{obj.license_size:,}", "sha256": obj.license_sha256}

    @admin.display(description=_("Changes (newest first)"))
    def change_history(self, obj: BillingInfo):
        if not obj or not obj.pk:
            return "—"
        return render_to_string("accounts/admin_billing_info_history.html",
                                {"changes": billing_info_history(account=obj.account)})

    def save_model(self, request, obj, form, change):
        values = {key: form.cleaned_data[key] for key in (*BILLING_INFO_TEXT_FIELDS, *BILLING_INFO_REVIEW_FIELDS)
                  if key in form.cleaned_data}
        account = obj.account
        try:
            info = billing_info_staff_save(account=account, user=request.user, values=values,
                                           license=form.clean_license_image, now=timezone.now())
        except BillingInfoError as exc:
            messages.error(request, str(exc))
            raise
        obj.pk = info.pk
        obj.refresh_from_db()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except BillingInfoError:
            # A concurrent change won the race; the message is queued and
            # nothing was written. Show the current state again.
            return redirect(request.get_full_path())

    def has_delete_permission(self, request, obj=None):
        # Statements keep their own snapshot; the history stays with the account.
        return request.user.is_superuser

    def delete_model(self, request, obj):
        name = obj.license_file.name if obj.license_file else ""
        super().delete_model(request, obj)
        if name:
            obj.license_file.storage.delete(name)


@admin.register(BillingInfoChange)
class BillingInfoChangeAdmin(ReadOnlyAdmin):
    """Read-only: the history is appended by the services, never edited."""

    list_display = ("changed_at", "account", "field", "old_value_short", "new_value_short", "changed_by", "source")
    list_filter = ("source", "field")
    search_fields = ("account__code", "account__name", "changed_by__email", "old_value", "new_value")
    date_hierarchy = "changed_at"
    list_select_related = ("account", "changed_by")

    @admin.display(description=_("Old value"))
    def old_value_short(self, obj):
        return obj.old_value if len(obj.old_value) <= 80 else obj.old_value[:79] + "…"

    @admin.display(description=_("New value"))
    def new_value_short(self, obj):
        return obj.new_value if len(obj.new_value) <= 80 else obj.new_value[:79] + "…"


from django.contrib import admin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only."""

    list_display = ("at", "action", "account", "actor_label", "summary")
    list_filter = ("action",)
    search_fields = ("summary", "actor_label", "account__code", "object_id")
    date_hierarchy = "at"
    list_select_related = ("account",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

"""Staff groups with the least permissions each job needs.

- **support**: billing information and licenses (view and change), and the
  accounts, users and memberships they belong to (view).
- **finance**: payments, top-ups (ledger entries), settlement and
  statements: view everything billing-related, change payments, add ledger
  entries (top-ups) and ingest tokens, resend statements, settle accounts.
- **auditor**: read-only over every billing model and the audit log.

``staff_groups_sync`` runs after every ``migrate`` (post_migrate), so new
models' permissions join the groups as they appear.
"""
from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

BILLING_APPS = ("core", "accounts", "usage", "invoices", "payments", "aurora_billing", "django_celery_beat")


def _perms(query: Q) -> list[Permission]:
    return list(Permission.objects.filter(query))


def staff_groups_sync() -> dict[str, int]:
    view_all = Q(content_type__app_label__in=BILLING_APPS, codename__startswith="view_")
    groups = {
        "support": _perms(
            Q(content_type__app_label="accounts", codename__in=[
                "view_billinginfo", "change_billinginfo", "view_billinginfochange",
                "view_account", "view_membership", "view_user",
            ])
        ),
        "finance": _perms(
            view_all
            | Q(content_type__app_label="payments", codename__startswith="change_")
            | Q(content_type__app_label="payments", codename__startswith="add_")
            | Q(content_type__app_label="usage", codename__in=["add_ingesttoken", "change_ingesttoken"])
            | Q(content_type__app_label="invoices", codename__in=[
                "change_statement", "add_bill", "change_invoicerequest"])  # resend, settle, decide invoices
        ),
        "auditor": _perms(view_all),
    }
    counts = {}
    for name, perms in groups.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(perms)
        counts[name] = len(perms)
    return counts


def sync_after_migrate(sender, plan=None, **kwargs) -> None:
    """post_migrate fires once per app, in INSTALLED_APPS order; permissions
    of every app exist only when it fires for the last one. ``flush`` (a
    transactional test's teardown) also sends post_migrate, without a
    ``plan``: the groups are data then, restored with the rest or not at all."""
    from django.apps import apps

    # Django sends it only for apps with a models module
    last = [config for config in apps.get_app_configs() if config.models_module is not None][-1]
    if plan is not None and sender.label == last.label:
        staff_groups_sync()

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AuroraBillingConfig(AppConfig):
    name = "aurora_billing"
    verbose_name = _("Aurora billing")

    def ready(self) -> None:
        from .staff import sync_after_migrate

        post_migrate.connect(sync_after_migrate, dispatch_uid="aurora_staff_groups")

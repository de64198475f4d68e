from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuroraBillingConfig(AppConfig):
    name = "aurora_billing"
    verbose_name = "Aurora billing"

    def ready(self) -> None:
        from .staff import sync_after_migrate

        post_migrate.connect(sync_after_migrate, dispatch_uid="aurora_staff_groups")

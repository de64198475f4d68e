from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = _("Funds and payments")

    def ready(self):
        from usage.signals import usage_imported

        from .emulators import checks  # noqa: F401 - registers the system check
        from .receivers import usage_imported_alerts

        usage_imported.connect(usage_imported_alerts, dispatch_uid="payments.alerts_after_import")

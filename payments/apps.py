from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Funds and payments"

    def ready(self):
        from .emulators import checks  # noqa: F401 - registers the system check

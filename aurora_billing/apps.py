from django.apps import AppConfig


class AuroraBillingConfig(AppConfig):
    name = "aurora_billing"
    verbose_name = "Aurora billing"

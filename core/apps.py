from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The bottom layer: what every app may import, importing no app."""

    name = "core"
    verbose_name = "Core"

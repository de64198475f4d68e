from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    """The bottom layer: what every app may import, importing no app."""

    name = "core"
    verbose_name = _("Core")

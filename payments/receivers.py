"""Receivers of the signals of the apps below (connected in apps.ready)."""
from __future__ import annotations

from django.utils import timezone

from core.queue import enqueue_on_commit


def usage_imported_alerts(sender, *, import_id: int, **kwargs) -> None:
    """After an import commits, evaluate the alerts of the accounts it touched."""
    from .tasks import alerts_after_import

    enqueue_on_commit(alerts_after_import, import_id, timezone.now().isoformat())

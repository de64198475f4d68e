"""The WSGI application (gunicorn, Procfile ``web``).

Each worker imports this module, loads what every request uses and then
freezes the heap (``heap_freeze``): the objects alive after start-up move to
the permanent generation, so the interpreter's full collections stop
rescanning them. Without it a full collection every ~15 requests rescanned
about 120,000 start-up objects and took ~30 ms: the insight page's p95 was
85 ms against a p50 of 53 ms (docs/history.md, Benchmark).
"""
import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aurora_billing.settings")
application = get_wsgi_application()


def heap_freeze() -> int:
    """Import every view (through the URLconf) and load both languages'
    catalogs, then ``gc.freeze()`` what is alive; returns how many objects
    were frozen. Objects frozen are never collected, so only start-up state
    belongs here (Python docs, ``gc.freeze``)."""
    from django.conf import settings
    from django.urls import get_resolver
    from django.utils import translation

    get_resolver().url_patterns  # noqa: B018  (imports the views)
    for code, _ in settings.LANGUAGES:
        with translation.override(code):
            translation.gettext("Billing")
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


heap_freeze()

"""``/healthz``: database and broker reachability for load balancers and operators.

Anyone may read it, so it says only ``ok`` or ``fail`` per dependency (the
broker is ``not used`` when tasks run in-process); why a check failed goes to
the ``aurora.web`` log, never into the answer.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

log = logging.getLogger("aurora.web")


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - report any failure
        log.error("healthz: database check failed: %r", exc)
        return "fail"


def _broker() -> str:
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "not used"
    if not url.startswith(("redis://", "rediss://")):
        log.error("healthz: cannot check a %s broker", url.split(":", 1)[0])
        return "fail"
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - report any failure
        log.error("healthz: broker check failed: %r", exc)
        return "fail"


@never_cache
def healthz(request):
    checks = {"database": _database(), "broker": _broker()}
    healthy = "fail" not in checks.values()
    return JsonResponse({"status": "ok" if healthy else "fail", **checks}, status=200 if healthy else 503)

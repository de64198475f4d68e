"""Enqueue Celery tasks after the surrounding transaction commits.

A task never sees uncommitted rows, and a broker outage never fails the web
request that asked for the task: the failure is logged, and the work is
picked up by the next beat run (every task here is idempotent and due-based).
"""
from __future__ import annotations

import logging

from django.db import transaction

log = logging.getLogger("aurora.tasks")


def enqueue_on_commit(task, *args, **kwargs) -> None:
    def send() -> None:
        try:
            task.apply_async(args=args, kwargs=kwargs)
        except Exception as exc:  # noqa: BLE001 - broker errors vary by transport
            log.error("could not enqueue %s%s: %s (beat will retry what is due)", task.name, args, exc)

    transaction.on_commit(send)

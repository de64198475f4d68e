"""Enqueue Celery tasks after the surrounding transaction commits.

A task never sees uncommitted rows, and a broker outage never fails the web
request that asked for the task: the failure is logged, and the work is
picked up by the next beat run (every task here is idempotent and due-based).

With ``CELERY_TASK_ALWAYS_EAGER`` (the local demo, the tests) a task runs in
this process at once and no broker is touched: Celery's own eager
``apply_async`` still opens a producer connection, which logs kombu's
"No hostname was supplied" on every payment.
"""
from __future__ import annotations

import logging

from django.db import transaction
from kombu import serialization

log = logging.getLogger("aurora.tasks")


def task_send(task, *, args: tuple = (), kwargs: dict | None = None, **options) -> None:
    """Send ``task`` to the broker, or run it here when tasks run in-process."""
    kwargs = kwargs or {}
    app = task.app
    if app.conf.task_always_eager:
        # the arguments make the same JSON round trip as on the wire
        content_type, encoding, data = serialization.dumps((list(args), kwargs), app.conf.task_serializer)
        args, kwargs = serialization.loads(data, content_type, encoding)
        task.apply(args=args, kwargs=kwargs)
        return
    task.apply_async(args=args, kwargs=kwargs, **options)


def enqueue_on_commit(task, *args, **kwargs) -> None:
    def send() -> None:
        try:
            task_send(task, args=args, kwargs=kwargs)
        except Exception as exc:  # noqa: BLE001 - broker errors vary by transport
            log.error("could not enqueue %s%s: %s (beat will retry what is due)", task.name, args, exc)

    transaction.on_commit(send)

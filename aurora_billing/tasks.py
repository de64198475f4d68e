"""Settlement tasks (Celery). Thin: they take ids and ISO strings and call
``aurora_billing.settlement``.

``settlement_run_due`` is what beat sends daily at 15:00 UTC+8. It finds
the accounts with a due, unsettled period and fans them out in batches to
``settlement_settle_batch``, so several workers share a large month. Every
task is idempotent (a settled period is never billed again), so a
duplicated beat tick, a redelivery after a worker crash (``acks_late``) or
an overlapping run is harmless.

A batch that created bills then queues the alert evaluation of those
accounts (payments.tasks.alerts_evaluate_batch: Overdrawn periods, packs),
which is as idempotent as settlement.
"""
from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.utils import timezone

from accounts.models import Account
from aurora_billing.settlement import accounts_due, accounts_settle
from core.periods import Period, parse_instant
from core.queue import task_send
from payments.tasks import alerts_evaluate_batch

log = logging.getLogger("aurora.settlement")

BATCH_SIZE = 200


def _instant(now: str | None) -> dt.datetime:
    """``now`` as an aware instant: an ISO 8601 string with offset, or the clock."""
    return parse_instant(now) if now else timezone.now()


@shared_task(name="aurora_billing.tasks.settlement_run_due", bind=True, acks_late=True, ignore_result=True)
def settlement_run_due(self, now: str | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Fan out every account with a due, unsettled period (catch-up included).
    Batches go to the queue this task came from. Returns the number of batches."""
    at = _instant(now)
    ids = accounts_due(now=at)
    queue = (self.request.delivery_info or {}).get("routing_key") or None
    batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
    for batch in batches:
        task_send(settlement_settle_batch, kwargs={"account_ids": batch, "now": at.isoformat()}, queue=queue)
    log.info("settlement due at %s: %d accounts in %d batches", at.isoformat(), len(ids), len(batches))
    return len(batches)


@shared_task(name="aurora_billing.tasks.settlement_settle_batch", acks_late=True, ignore_result=True)
def settlement_settle_batch(account_ids: list[int], now: str | None = None, period: str | None = None) -> dict:
    """Settle a batch of accounts: ``period`` (YYYY-MM) or every due period."""
    report = accounts_settle(account_ids=[int(pk) for pk in account_ids], now=_instant(now),
                             period=Period.parse(period) if period else None)
    log.info("settlement batch of %d accounts: %s", len(account_ids), report.summary())
    if report.settled:  # a bill may have left a period Overdrawn, a pack low: evaluate those accounts now
        codes = sorted({code for code, _ in report.settled})
        ids = list(Account.objects.filter(code__in=codes).order_by("pk").values_list("pk", flat=True))
        task_send(alerts_evaluate_batch, kwargs={"account_ids": ids, "now": _instant(now).isoformat()})
    return {"settled": len(report.settled), "already": len(report.already), "empty": len(report.empty),
            "errors": report.errors}

"""Faults: a Celery worker killed in the middle of a settlement, and a broker
outage while the console is used. The worker test needs PostgreSQL and Redis
(skips locally without them, fails under CI=true)."""
from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import F, Sum
from django.test import override_settings

from aurora_billing.celery import app
from aurora_billing.settlement import accounts_due
from aurora_billing.tasks import settlement_run_due
from core.queue import enqueue_on_commit
from invoices.models import Bill
from payments.models import LedgerEntry
from payments.services import topup_record
from tests.support import add_price, add_usage, utc
from usage.models import DailyUsage

from .test_worker_e2e import require_services, start_worker, stop_worker

ACCOUNTS = 120
NOW = "2026-11-02T10:00:00+08:00"


def _seed(make_account):
    add_price("email", "sg", "0.000300")
    add_price("data_flow", "sg", "0.30")
    for i in range(ACCOUNTS):
        account = make_account(code=f"acc{i:03d}", users=())
        add_usage(account, "sg", "email", "2026-10-05", 10_000 + i)
        add_usage(account, "sg", "data_flow", "2026-10-06", "5")
        topup_record(account=account, amount=Decimal("2.00"), reference="t", at=utc(2026, 9, 1))


@pytest.mark.worker
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_worker_killed_mid_settlement_then_rerun_settles_the_rest_once(make_account, tmp_path):
    require_services()
    _seed(make_account)
    queue = f"faults-{uuid.uuid4().hex[:12]}"
    worker = start_worker(queue, tmp_path / "worker1.log")
    try:
        app.send_task(settlement_run_due.name, kwargs={"now": NOW, "batch_size": 1}, queue=queue)
        deadline = time.monotonic() + 90
        while Bill.objects.count() < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(worker.pid, signal.SIGKILL)  # no warm shutdown: the batch in hand is lost
        worker.wait(timeout=15)
    finally:
        stop_worker(worker)
    after_kill = Bill.objects.count()
    assert 0 < after_kill < ACCOUNTS, f"the kill should land mid-settlement (bills: {after_kill})"

    # The rerun (beat's next tick, or an operator) settles the rest, once.
    worker = start_worker(queue + "-rerun", tmp_path / "worker2.log")
    try:
        app.send_task(settlement_run_due.name, kwargs={"now": NOW, "batch_size": 20}, queue=queue + "-rerun")
        deadline = time.monotonic() + 120
        while Bill.objects.count() < ACCOUNTS and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop_worker(worker)
    assert Bill.objects.count() == ACCOUNTS
    assert Bill.objects.values("account").distinct().count() == ACCOUNTS
    assert not DailyUsage.objects.exclude(billed_quantity=F("quantity")).exists()
    for bill in Bill.objects.all():
        applied = LedgerEntry.objects.filter(account=bill.account, kind="settlement").aggregate(s=Sum("amount"))["s"]
        assert -applied == bill.funds_applied == Decimal("2.00")
    assert accounts_due(now=utc(2026, 11, 2, 2)) == []


def _reset_broker_pools() -> None:
    """Drop the app's references to its connection and producer pools so the
    next publish uses ``app.conf.broker_url``. The pools are not closed: kombu
    shares them process-wide per broker URL, and other tests publish with them."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def redis_down():
    """Broker and cache pointed at a closed port (nothing listens on port 1)."""
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = "redis://127.0.0.1:1/0", False
    _reset_broker_pools()
    try:
        with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                                   "LOCATION": "redis://127.0.0.1:1/0"}}):
            yield
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        _reset_broker_pools()


@pytest.mark.django_db(transaction=True)
def test_broker_and_cache_down_console_still_works_and_work_stays_due(client, acme, caplog, redis_down):
    """Redis (broker and cache) unreachable: sign-in and the console answer;
    a task that cannot be enqueued is logged and its work stays due for the
    next beat run once Redis is back."""
    response = client.post("/accounts/login/", {"username": "owner@acme.example", "password": "demo-pass-123"})
    assert response.status_code == 302
    assert client.get("/billing/").status_code == 200
    add_price("email", "sg", "0.000300")
    add_usage(acme, "sg", "email", "2026-10-05", 100)
    logging.getLogger("aurora").addHandler(caplog.handler)  # "aurora" does not propagate to the root
    started = time.monotonic()
    with transaction.atomic():
        enqueue_on_commit(settlement_run_due, NOW)
    assert time.monotonic() - started < 15, "a broker outage must not hang the caller"
    assert "could not enqueue aurora_billing.tasks.settlement_run_due" in caplog.text
    logging.getLogger("aurora").removeHandler(caplog.handler)
    assert accounts_due(now=utc(2026, 11, 2, 2)) == [acme.pk]

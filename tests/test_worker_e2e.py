"""End to end with a real Celery worker process, the real Redis broker and
PostgreSQL (not eager): usage in, the beat's settlement task run by the
worker, bills out. Skips locally without Redis or PostgreSQL; fails under CI."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django_celery_beat.models import PeriodicTask

from aurora_billing.beat import beat_schedule_sync
from aurora_billing.celery import app
from invoices.models import Bill
from tests.support import add_usage, missing_service, worked_example_prices, worked_example_seed
from usage.models import DailyUsage

from .test_settlement_concurrency import database_url_of_test_db

pytestmark = [pytest.mark.worker, pytest.mark.postgres,
              pytest.mark.django_db(transaction=True),
              # send_task always publishes to the broker, which is the point here
              pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")]

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 90  # seconds for the worker to start and settle


def require_services() -> None:
    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL (set DATABASE_URL=postgres://…)")
    if not settings.REDIS_URL:
        missing_service("needs Redis (set REDIS_URL=redis://…)")
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing_service(f"Redis at {settings.REDIS_URL} is not reachable: {exc}")


def start_worker(queue: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url_of_test_db(), "CELERY_TASK_ALWAYS_EAGER": "0",
           "REDIS_URL": settings.REDIS_URL, "LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "celery", "-A", "aurora_billing", "worker", "--pool", "solo",
               "--queues", queue, "--hostname", f"{queue}@%h", "--without-mingle", "--without-gossip",
               "--without-heartbeat", "--loglevel", "INFO"]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_worker(worker: subprocess.Popen) -> None:
    """Always terminates the worker (its whole process group)."""
    if worker.poll() is not None:
        return
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=15)


def test_worker_settles_what_beat_finds_due(make_account, tmp_path):
    require_services()
    worked_example_prices()
    accounts = []
    for code in ("acme", "bolt", "cask"):
        account = make_account(code=code, users=())
        worked_example_seed(account)
        accounts.append(account)
    stray = make_account(code="stray", users=())
    add_usage(stray, "mars", "email", "2026-10-05", 10)  # no price: reported, left unsettled
    beat_schedule_sync()
    scheduled = PeriodicTask.objects.get(name="aurora: settlement")

    queue = f"e2e-settle-{uuid.uuid4().hex[:12]}"
    log = tmp_path / "worker.log"
    worker = start_worker(queue, log)
    try:
        # What beat sends at 15:00 UTC+8 on the 1st (pinned to that tick), not eager.
        app.send_task(scheduled.task, kwargs={"now": "2026-11-01T15:00:00+08:00", "batch_size": 2}, queue=queue)
        deadline = time.monotonic() + TIMEOUT
        while Bill.objects.count() < len(accounts) and time.monotonic() < deadline:
            assert worker.poll() is None, f"the worker exited:\n{log.read_text(errors='replace')}"
            time.sleep(0.25)
        time.sleep(0.5)  # a wrongly created extra bill would show up now
    finally:
        stop_worker(worker)
    worker_log = log.read_text(errors="replace")
    assert sorted(Bill.objects.values_list("account__code", "period")) == [
        ("acme", "2026-10"), ("bolt", "2026-10"), ("cask", "2026-10")], worker_log
    for account in accounts:
        email, data_flow = Bill.objects.get(account=account).lines.order_by("position")
        assert (email.deducted_quantity, email.billable_quantity, email.amount, email.paid, email.balance,
                email.status) == (Decimal("60000"), Decimal("18000"), Decimal("5.40"), Decimal("5.00"),
                                  Decimal("0.40"), "Overdrawn")
        assert (data_flow.billable_quantity, data_flow.amount, data_flow.paid, data_flow.status) == (
            Decimal("4.4"), Decimal("1.32"), Decimal("0.00"), "Overdrawn")
    assert not Bill.objects.filter(account=stray).exists()
    assert DailyUsage.objects.get(account=stray).billed_quantity == 0
    assert "settlement_run_due" in worker_log and "settlement_settle_batch" in worker_log
    assert "no USD price for email in region mars" in worker_log

"""Settlement throughput on PostgreSQL (issue 4).

``python -m benchmarks settle`` (options through ``BENCH_SETTLE_ARGS``), or
``python -m benchmarks.bench_settle [--accounts N] [--days D] [--batch B] [--workers 1,2] [--keep]``

Seeds database ``aurora_bench_settle`` (re-created each run unless
``--keep`` finds it already seeded) with one month (2026-10) of usage for
N accounts × 5 regions × all five service items, then measures, in the
same run:

1. a single SQL ``GROUP BY`` over that month's usage (reading the data once);
2. settling every account with one worker process;
3. the same settlement with two worker processes sharing the batches
   (the state is reset between runs).

Usage shape per (account, region): email ``delivered`` on D days plus one
row for each of the five other results, data flow and data masking on D
days, one dedicated-IP and one BIMI row: 2·D + 7 rows. Every account has a
pack in region ``sg`` (half of them a second one), two thirds have funds.
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import random
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path

from benchmarks._support import database_url, recreate_database, setup_django

DB_NAME = "aurora_bench_settle"
PERIOD = "2026-10"
REGIONS = ["hk", "jp", "sg", "us-east", "eu-west"]
OTHER_RESULTS = ["soft_bounce", "format_error", "not_exist", "reject", "junk_mail"]
PRICES = {
    "email": "0.000300",
    "data_flow": "0.30",
    "dedicated_ip": "25.00",
    "data_masking": "0.000800",
    "bimi_certification": "12.50",
}


def _is_seeded(accounts: int) -> bool:
    from accounts.models import Account

    try:
        return Account.objects.filter(code__startswith="bench-").count() == accounts
    except Exception:  # noqa: BLE001 — no schema yet
        return False


def seed(*, accounts: int, days: int) -> int:
    """Seed the benchmark month; returns the number of usage rows."""
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import Account
    from payments.models import LedgerEntry
    from usage.models import EmailPack, Price, Region

    call_command("migrate", verbosity=0)
    rng = random.Random(4)
    Region.objects.bulk_create([Region(code=c, name=c.upper()) for c in REGIONS])
    Price.objects.bulk_create([
        Price(service_id=s, region_id=r, unit_price=Decimal(p), currency="USD",
              effective_from=dt.date(2026, 1, 1))
        for s, p in PRICES.items() for r in REGIONS
    ])
    created = Account.objects.bulk_create(
        [Account(code=f"bench-{i:05d}", name=f"Bench {i}") for i in range(accounts)], batch_size=5000
    )
    packs, topups = [], []
    for acc in created:
        packs.append(EmailPack(account=acc, region_id="sg", reference="p1", quantity=rng.randrange(0, 60_000),
                               valid_from=dt.date(2026, 9, 1), valid_until=dt.date(2026, 10, 16)))
        if acc.pk % 2:
            packs.append(EmailPack(account=acc, region_id="sg", reference="p2", quantity=50_000,
                                   valid_from=dt.date(2026, 10, 10), valid_until=dt.date(2028, 10, 10)))
        if acc.pk % 3:
            topups.append(LedgerEntry(account=acc, kind="topup", amount=Decimal(rng.randrange(100, 20_000)) / 100,
                                      currency="USD", at=dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
                                      reference="seed"))
    EmailPack.objects.bulk_create(packs, batch_size=5000)
    LedgerEntry.objects.bulk_create(topups, batch_size=5000)

    first = dt.date(2026, 10, 1)
    step = max(1, 31 // days)
    usage_days = [first + dt.timedelta(days=i * step) for i in range(days)]
    mid = dt.date(2026, 10, 15)
    now = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)
    rows = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy("COPY usage_dailyusage (account_id, region_id, service_id, result, day, quantity, "
                      "billed_quantity, updated_at) FROM STDIN") as copy:
            for acc in created:
                for region in REGIONS:
                    def row(service, result, day, quantity, _acc=acc.pk, _region=region):
                        copy.write_row((_acc, _region, service, result, day, quantity, 0, now))
                    for day in usage_days:
                        row("email", "delivered", day, rng.randrange(0, 40_000))
                        row("data_flow", "", day, Decimal(rng.randrange(0, 10_000_000)) / 1_000_000)
                        row("data_masking", "", day, rng.randrange(0, 5_000))
                    for result in OTHER_RESULTS:
                        row("email", result, mid, rng.randrange(0, 500))
                    row("dedicated_ip", "", first, rng.randrange(0, 3))
                    row("bimi_certification", "", first, rng.randrange(0, 2))
                    rows += 3 * days + len(OTHER_RESULTS) + 2
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return rows


def reset() -> None:
    """Undo settlement: the benchmark runs again on the same data."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM payments_ledgerentry WHERE kind = 'settlement'")
        cursor.execute("DELETE FROM invoices_packdeduction")
        cursor.execute("DELETE FROM invoices_billline")
        cursor.execute("DELETE FROM invoices_bill")
        cursor.execute("UPDATE usage_dailyusage SET billed_quantity = 0 WHERE billed_quantity <> 0")
        cursor.execute("VACUUM ANALYZE")


def group_by_seconds() -> tuple[float, int]:
    """The month's usage summed per (account, region, service) in one SQL
    statement, every group fetched: the cost of reading the data once.
    Median of three runs."""
    from django.db import connection

    from core.periods import Period

    period = Period.parse(PERIOD)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT account_id, region_id, service_id, SUM(quantity) FROM usage_dailyusage "
                "WHERE day >= %s AND day < %s GROUP BY account_id, region_id, service_id",
                [period.first_day, period.end_day],
            )
            groups = len(cursor.fetchall())
        timings.append(time.perf_counter() - start)
    return sorted(timings)[1], groups


def verify(accounts: int) -> str:
    """Every account billed once and every usage unit on exactly one line."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT account_id) FROM invoices_bill")
        bills, billed_accounts = cursor.fetchone()
        cursor.execute("SELECT (SELECT sum(quantity) FROM usage_dailyusage), "
                       "(SELECT sum(usage_quantity) FROM invoices_billline), "
                       "(SELECT count(*) FROM usage_dailyusage WHERE billed_quantity <> quantity)")
        used, billed, unbilled_rows = cursor.fetchone()
    ok = bills == billed_accounts == accounts and used == billed and unbilled_rows == 0
    return "ok" if ok else f"FAILED: {bills} bills, usage {used} vs lines {billed}, {unbilled_rows} rows unbilled"


def _backend_cpu_seconds(connection) -> float:
    """CPU seconds used so far by this connection's PostgreSQL backend
    (readable when the server runs on this machine; 0.0 otherwise)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _worker(url: str, queue, ready, go, results) -> None:
    setup_django(url)
    from django.db import close_old_connections, connection

    from aurora_billing.settlement import accounts_settle
    from core.periods import Period

    period = Period.parse(PERIOD)
    now = period.bill_time
    ready.release()
    go.wait()
    settled = errors = 0
    backend_cpu = 0.0
    start = resource.getrusage(resource.RUSAGE_SELF)
    while True:
        batch = queue.get()
        if batch is None:
            break
        report = accounts_settle(account_ids=batch, now=now)
        settled += len(report.settled)
        errors += len(report.errors)
        backend_cpu += _backend_cpu_seconds(connection)
        close_old_connections()  # as a Celery worker does after each task (CONN_MAX_AGE=0)
    end = resource.getrusage(resource.RUSAGE_SELF)
    own_cpu = (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)
    results.put((settled, errors, own_cpu, backend_cpu))


def settle_seconds(url: str, *, workers: int, batch: int) -> tuple[float, int, int, float, float]:
    """Settle every due account with ``workers`` processes pulling batches."""
    from aurora_billing.settlement import accounts_due
    from core.periods import Period

    ctx = mp.get_context("spawn")
    queue, results = ctx.Queue(), ctx.Queue()
    ready, go = ctx.Semaphore(0), ctx.Event()
    procs = [ctx.Process(target=_worker, args=(url, queue, ready, go, results)) for _ in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    start = time.perf_counter()
    go.set()
    ids = accounts_due(now=Period.parse(PERIOD).bill_time)
    for i in range(0, len(ids), batch):
        queue.put(ids[i:i + batch])
    for _ in procs:
        queue.put(None)
    settled = errors = 0
    worker_cpu = backend_cpu = 0.0
    for _ in procs:
        s, e, own, backend = results.get()
        settled, errors, worker_cpu, backend_cpu = settled + s, errors + e, worker_cpu + own, backend_cpu + backend
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    return elapsed, settled, errors, worker_cpu, backend_cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks settle")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=3, help="usage days per email/data-flow/masking series")
    parser.add_argument("--batch", type=int, default=200, help="accounts per batch (one task)")
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure")
    parser.add_argument("--keep", action="store_true", help="reuse an already seeded database")
    defaults = os.environ.get("BENCH_SETTLE_ARGS", "").split()
    args = parser.parse_args(argv if argv is not None else defaults)

    url = database_url(DB_NAME)
    os.environ["DATABASE_URL"] = url
    if not args.keep:
        recreate_database(url)
    setup_django(url)
    from django.db import connections

    t0 = time.perf_counter()
    if args.keep and _is_seeded(args.accounts):
        reset()
        rows = None
    else:
        if args.keep:
            connections.close_all()
            recreate_database(url)
        rows = seed(accounts=args.accounts, days=args.days)
    seed_s = time.perf_counter() - t0
    from usage.models import DailyUsage

    rows = rows or DailyUsage.objects.count()
    gb_s, groups = group_by_seconds()

    table = [("GROUP BY (read once)", f"{gb_s:.2f}", "", f"{groups} groups", "1", "", "", "", "")]
    for workers in [int(w) for w in args.workers.split(",")]:
        reset()
        connections.close_all()
        load = os.getloadavg()[0]
        secs, settled, errors, worker_cpu, backend_cpu = settle_seconds(url, workers=workers, batch=args.batch)
        table.append((f"settle, {workers} worker(s)", f"{secs:.2f}", f"{settled / secs:.0f}",
                      f"{settled} bills, {errors} errors", f"{secs / gb_s:.0f}", f"{worker_cpu:.1f}",
                      f"{backend_cpu:.1f}", f"{load:.1f}", verify(args.accounts)))
    print(f"accounts={args.accounts} regions={len(REGIONS)} usage rows={rows} batch={args.batch} "
          f"(set-up {seed_s:.0f} s)")
    header = ("run", "seconds", "accounts/s", "result", "× GROUP BY", "worker CPU s", "PostgreSQL CPU s",
              "load before", "check")
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
    for r in [header, *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    if len(table) >= 3:
        one, two = float(table[1][1]), float(table[2][1])
        print(f"speed-up with two workers: {one / two:.2f}×")


if __name__ == "__main__":
    main(sys.argv[1:])

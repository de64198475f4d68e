"""Server time of the billing console page on PostgreSQL (issue 5).

``python -m benchmarks console`` (options through ``BENCH_CONSOLE_ARGS``), or
``python -m benchmarks.bench_console [--accounts N] [--requests R] [--rounds K] [--keep] [--no-freeze]
[--proposed-index]``

Seeds database ``aurora_bench_console`` (re-created each run unless
``--keep`` finds it seeded) with 12 months of usage (2025-12 … 2026-11) for
N accounts, settles the 11 ended months of every account with the real
settlement, and then times ``GET /billing/`` through Django's test client
(the whole request: middleware, session, the selector, the template) for
the large account, with the clock pinned to 2026-11-20 12:00 UTC+8: K
rounds of R requests per page, pages interleaved request by request; the
machine is shared, so the round with the lowest p95 is reported (every
round's p95 is printed too).

Usage shape:

- N − 1 ordinary accounts, 2 regions: email ``delivered`` and data flow
  every day, the five other results once a month;
- one large account, 20 regions: all six email results, data flow and
  data masking every day, dedicated IP and BIMI monthly, a pack per region.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from decimal import Decimal

from benchmarks._support import database_url, recreate_database, setup_django

DB_NAME = "aurora_bench_console"
# A partial index the month-to-date estimate would use (usage app; not created
# by migrations): timed with --proposed-index only.
PROPOSED_INDEX = "bench_usage_unbilled"
NOW = dt.datetime(2026, 11, 20, 4, 0, tzinfo=dt.UTC)  # 2026-11-20 12:00 UTC+8
FIRST_DAY = dt.date(2025, 12, 1)
LARGE = "bench-large"
LARGE_EMAIL = "owner@large.example"
SMALL_REGIONS = ["sg", "hk"]
LARGE_REGIONS = ["sg", "hk"] + [f"r{i:02d}" for i in range(18)]
RESULTS = ["delivered", "soft_bounce", "format_error", "not_exist", "reject", "junk_mail"]
RESULT_SHARE = [Decimal("0.90"), Decimal("0.04"), Decimal("0.015"), Decimal("0.025"), Decimal("0.012"),
                Decimal("0.008")]
PRICES = {
    "email": "0.000300",
    "data_flow": "0.30",
    "dedicated_ip": "25.00",
    "data_masking": "0.002000",
    "bimi_certification": "12.00",
}


def _is_seeded(accounts: int) -> bool:
    from accounts.models import Account
    from invoices.models import Bill

    try:
        return (Account.objects.filter(code__startswith="bench-").count() == accounts
                and Bill.objects.filter(account__code=LARGE).count() == 11)
    except Exception:  # noqa: BLE001 - no schema yet
        return False


def _days() -> list[dt.date]:
    today = NOW.date()
    return [FIRST_DAY + dt.timedelta(days=i) for i in range((today - FIRST_DAY).days + 1)]


def seed(*, accounts: int) -> int:
    """Seed accounts, prices, packs, funds and usage; returns the usage rows."""
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import Account, Membership, User
    from payments.models import LedgerEntry
    from usage.models import EmailPack, Price, Region

    call_command("migrate", verbosity=0)
    rng = random.Random(5)
    Region.objects.bulk_create([Region(code=c, name=f"Region {c.upper()}") for c in LARGE_REGIONS])
    Price.objects.bulk_create([
        Price(service_id=s, region_id=r, unit_price=Decimal(p), currency="USD", effective_from=dt.date(2025, 1, 1))
        for s, p in PRICES.items() for r in LARGE_REGIONS
    ])
    created = Account.objects.bulk_create(
        [Account(code=f"bench-{i:05d}", name=f"Bench {i}") for i in range(accounts - 1)]
        + [Account(code=LARGE, name="Large Account Ltd")], batch_size=5000,
    )
    large = created[-1]
    user = User.objects.create_user(LARGE_EMAIL, "benchmark-pass-123")
    Membership.objects.create(user=user, account=large, role="owner")
    packs = [EmailPack(account=acc, region_id="sg", reference="p1", quantity=rng.randrange(0, 200_000),
                       valid_from=FIRST_DAY, valid_until=dt.date(2027, 12, 1)) for acc in created]
    packs += [EmailPack(account=large, region_id=r, reference=f"p-{r}", quantity=500_000,
                        valid_from=FIRST_DAY, valid_until=dt.date(2027, 12, 1)) for r in LARGE_REGIONS[1:]]
    EmailPack.objects.bulk_create(packs, batch_size=5000)
    LedgerEntry.objects.bulk_create([
        LedgerEntry(account=acc, kind="topup", amount=Decimal(rng.randrange(1_000, 50_000)), currency="USD",
                    at=dt.datetime(2025, 11, 30, tzinfo=dt.UTC), reference="seed")
        for acc in created if acc.pk % 3
    ], batch_size=5000)

    days = _days()
    updated = NOW - dt.timedelta(hours=1)
    rows = 0
    with connection.cursor() as cursor, cursor.cursor.copy(
        "COPY usage_dailyusage (account_id, region_id, service_id, result, day, quantity, billed_quantity, "
        "updated_at) FROM STDIN"
    ) as copy:
        def row(account_id, region, service, result, day, quantity):
            copy.write_row((account_id, region, service, result, day, quantity, 0, updated))

        for acc in created[:-1]:
            for region in SMALL_REGIONS:
                for day in days:
                    emails = rng.randrange(0, 20_000)
                    row(acc.pk, region, "email", "delivered", day, emails)
                    row(acc.pk, region, "data_flow", "", day, Decimal(rng.randrange(0, 8_000_000)) / 1_000_000)
                    rows += 2
                    if day.day == 15:
                        for result in RESULTS[1:]:
                            row(acc.pk, region, "email", result, day, rng.randrange(0, 400))
                            rows += 1
        for region in LARGE_REGIONS:
            for day in days:
                emails = Decimal(rng.randrange(20_000, 60_000))
                for result, share in zip(RESULTS, RESULT_SHARE, strict=True):
                    row(large.pk, region, "email", result, day, int(emails * share))
                row(large.pk, region, "data_flow", "", day, (emails * Decimal("0.00035")).quantize(Decimal("0.000001")))
                row(large.pk, region, "data_masking", "", day, rng.randrange(100, 900))
                rows += len(RESULTS) + 2
                if day.day == 1:
                    row(large.pk, region, "dedicated_ip", "", day, 2)
                    rows += 1
                    if region == "sg":
                        row(large.pk, region, "bimi_certification", "", day, 1)
                        rows += 1
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return rows


def settle_all() -> tuple[int, float]:
    """Settle every ended month of every account (real settlement)."""
    from accounts.models import Account
    from aurora_billing.settlement import accounts_settle

    start = time.perf_counter()
    bills = 0
    accounts = list(Account.objects.filter(code__startswith="bench-").order_by("pk"))
    for i, account in enumerate(accounts, 1):
        report = accounts_settle(account_ids=[account.pk], now=NOW)
        if report.errors:
            raise SystemExit(f"settlement of {account.code} failed: {report.errors}")
        bills += len(report.settled)
        if sys.stderr.isatty() and i % 50 == 0:
            print(f"\r  settled {i}/{len(accounts)} accounts", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return bills, time.perf_counter() - start


def heap_freeze(enabled: bool = True) -> str:
    """Freeze the start-up heap as each gunicorn worker does on import of
    ``aurora_billing/wsgi.py`` (before any page is served); the line to print."""
    if not enabled:
        return "heap not frozen (--no-freeze): full collections rescan the start-up objects"
    from aurora_billing.wsgi import heap_freeze as freeze

    return f"start-up heap frozen as aurora_billing/wsgi.py does ({freeze():,} objects)"


def warm_up(client, paths: list[str]) -> None:
    for path in paths:
        for _ in range(10):
            assert client.get(path).status_code == 200


def timed(client, paths: list[str], requests: int) -> dict[str, list[float]]:
    """``requests`` GETs of every path, interleaved (so a burst of load from
    elsewhere on the machine hits every page alike); times in ms."""
    times: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(requests):
        for path in paths:
            start = time.perf_counter()
            response = client.get(path)
            times[path].append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.status_code
    return times


def queries_and_size(client, path: str) -> tuple[int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    return len(ctx), len(response.content)


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks console")
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per page per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the one with the lowest p95 is reported")
    parser.add_argument("--keep", action="store_true", help="reuse an already seeded database")
    parser.add_argument("--no-freeze", action="store_true",
                        help="do not freeze the start-up heap (aurora_billing/wsgi.py freezes it in production)")
    parser.add_argument("--proposed-index", action="store_true",
                        help="also time the month-to-date page with a partial index on unbilled usage "
                             "(created for the run, then dropped)")
    defaults = os.environ.get("BENCH_CONSOLE_ARGS", "").split()
    args = parser.parse_args(argv if argv is not None else defaults)

    url = database_url(DB_NAME)
    os.environ["DATABASE_URL"] = url
    if not args.keep:
        recreate_database(url)
    setup_django(url)
    import time_machine
    from django.db import connections

    from accounts.models import User
    from invoices.models import Bill, BillLine
    from usage.models import DailyUsage

    traveller = time_machine.travel(NOW, tick=True)
    traveller.start()
    try:
        t0 = time.perf_counter()
        settle_s = 0.0
        if args.keep and _is_seeded(args.accounts):
            from django.core.management import call_command

            call_command("migrate", verbosity=0)  # the schema may have moved on since seeding
        else:
            if args.keep:
                connections.close_all()
                recreate_database(url)
            seed(accounts=args.accounts)
            _, settle_s = settle_all()
        seed_s = time.perf_counter() - t0
        print(f"accounts={args.accounts} usage rows={DailyUsage.objects.count()} bills={Bill.objects.count()} "
              f"bill lines={BillLine.objects.count()} large account: {len(LARGE_REGIONS)} regions, "
              f"{DailyUsage.objects.filter(account__code=LARGE).count()} usage rows "
              + (f"(seed + settle {seed_s:.0f} s, of which settle {settle_s:.0f} s)"
                 if settle_s else "(seeded earlier)"))

        from django.test import Client

        client = Client()
        client.force_login(User.objects.get(email=LARGE_EMAIL))
        pages = [
            ("current month (Pending estimate)", "/billing/"),
            ("settled month 2026-10", "/billing/?period=2026-10"),
            ("settled month 2025-12", "/billing/?period=2025-12"),
        ]
        settings_dict = connections["default"].settings_dict
        runs: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
        shape: dict[str, tuple[int, int]] = {}
        current_name, current_path = pages[0]
        print(heap_freeze(not args.no_freeze))
        warm_up(client, [path for _, path in pages])
        for path in [path for _, path in pages]:
            shape[path] = queries_and_size(client, path)
        for _ in range(args.rounds):
            settings_dict["CONN_MAX_AGE"] = 60
            times = timed(client, [path for _, path in pages], args.requests)
            for name, path in pages:
                runs[(name, "persistent")].append(times[path])
            settings_dict["CONN_MAX_AGE"] = 0
            connections.close_all()
            runs[(current_name, "new per request")].append(timed(client, [current_path], args.requests)[current_path])
            settings_dict["CONN_MAX_AGE"] = 60
            if args.proposed_index:
                with connections["default"].cursor() as cursor:
                    cursor.execute(f"CREATE INDEX {PROPOSED_INDEX} ON usage_dailyusage (account_id, day) "
                                   "WHERE quantity > billed_quantity")
                    cursor.execute("ANALYZE usage_dailyusage")
                try:
                    warm_up(client, [current_path])
                    runs[(current_name + " + unbilled index", "persistent")].append(
                        timed(client, [current_path], args.requests)[current_path])
                finally:
                    with connections["default"].cursor() as cursor:
                        cursor.execute(f"DROP INDEX IF EXISTS {PROPOSED_INDEX}")
        paths = dict(pages)
        paths[current_name + " + unbilled index"] = current_path
        table = []
        for (name, label), series in runs.items():
            best = min(series, key=lambda t: percentile(t, 95))
            queries, size = shape[paths[name]]
            table.append((name, label, f"{len(series)} × {args.requests}", f"{statistics.median(best):.1f}",
                          f"{percentile(best, 95):.1f}", f"{max(best):.1f}",
                          " / ".join(f"{percentile(t, 95):.0f}" for t in series), str(queries), f"{size // 1024} KiB"))
    finally:
        traveller.stop()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average at the end {load} (shared machine)")
    print("p50/p95/max of the round with the lowest p95; p95 of every round alongside")
    header = ("page (large account)", "DB connection", "rounds × requests", "p50 ms", "p95 ms", "max ms",
              "p95 per round", "queries", "HTML")
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
    for r in [header, *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])

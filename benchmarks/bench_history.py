"""Server time of the history and insight pages (issue #17) on PostgreSQL.

``python -m benchmarks history`` (options through ``BENCH_HISTORY_ARGS``), or
``python -m benchmarks.bench_history [--accounts N] [--requests R] [--rounds K] [--keep] [--no-freeze]``

Seeds database ``aurora_h_history`` with the console benchmark's data
(``bench_console.seed``: N accounts × 12 months, the 11 ended months
settled) and times ``/billing/bills/``, ``/billing/funds/``,
``/billing/packs/`` and ``/billing/insight/`` (month to date and a settled
month) for the large account (20 regions), clock pinned to 2026-11-20 12:00
UTC+8; the round with the lowest p95 is reported, with the query count.
The start-up heap is frozen first, as each web worker freezes it
(``aurora_billing/wsgi.py``); ``--no-freeze`` measures without.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from benchmarks import bench_console as console
from benchmarks._support import database_url, recreate_database, setup_django

DB_NAME = "aurora_h_history"
PAGES = [
    ("bills", "/billing/bills/"),
    ("funds", "/billing/funds/"),
    ("packs", "/billing/packs/"),
    ("insight, month to date", "/billing/insight/"),
    ("insight, 2026-10", "/billing/insight/?period=2026-10"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks history")
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=100, help="requests per page per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="reuse an already seeded database")
    parser.add_argument("--no-freeze", action="store_true",
                        help="do not freeze the start-up heap (aurora_billing/wsgi.py freezes it in production)")
    args = parser.parse_args(argv if argv is not None else os.environ.get("BENCH_HISTORY_ARGS", "").split())
    url = database_url(DB_NAME)
    os.environ["DATABASE_URL"] = url
    if not args.keep:
        recreate_database(url)
    setup_django(url)
    import time_machine
    from django.test import Client

    from accounts.models import User

    traveller = time_machine.travel(console.NOW, tick=True)
    traveller.start()
    try:
        if not (args.keep and console._is_seeded(args.accounts)):
            t0 = time.perf_counter()
            console.seed(accounts=args.accounts)
            console.settle_all()
            print(f"seeded and settled {args.accounts} accounts in {time.perf_counter() - t0:.0f} s")
        client = Client()
        client.force_login(User.objects.get(email=console.LARGE_EMAIL))
        paths = [p for _, p in PAGES]
        heap = console.heap_freeze(not args.no_freeze)
        console.warm_up(client, paths)
        shape = {p: console.queries_and_size(client, p) for p in paths}
        runs: dict[str, list[list[float]]] = {p: [] for p in paths}
        for _ in range(args.rounds):
            for path, series in console.timed(client, paths, args.requests).items():
                runs[path].append(series)
    finally:
        traveller.stop()
    print(heap)
    print(f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (shared machine)")
    print(f"{'page (large account)':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8} {'HTML':>8}")
    for name, path in PAGES:
        best = min(runs[path], key=lambda t: console.percentile(t, 95))
        queries, size = shape[path]
        print(f"{name:28} {statistics.median(best):8.1f} {console.percentile(best, 95):8.1f} {max(best):8.1f} "
              f"{queries:8d} {size // 1024:6d} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])

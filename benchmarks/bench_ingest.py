"""Usage ingestion benchmark (issue 3): ``python -m benchmarks ingest``.

1. Generates a CSV file of BENCH_INGEST_ROWS usage records (default
   1,000,000; 50 accounts, 4 regions, email with results, data_flow with
   6 decimals, instants with offsets and plain days).
2. In the same run, alternately (BENCH_INGEST_REPEAT times, default 3):
   ``psql \\copy`` of the file into an unindexed table, and the import of
   the file by ``usage.services.usage_import`` (what ``import_usage`` runs)
   in a child process, on a database emptied of usage before each import.
   The import time is the service call: hashing, validation, COPY, the
   daily upsert and the commit; Python and Django start-up are not in it
   (the child's whole wall time is printed too). Peak RSS is the child's
   ``ru_maxrss``; an import of twice the rows (the same accounts and month)
   shows that memory does not grow with the file. The file is in time
   order, as the sending platform writes usage, so the import writes each
   day while it reads the next (docs/ingestion.md); one import of the same
   rows shuffled shows the cost when it cannot.
3. POSTs 10,000-record requests to /api/usage/ served by gunicorn (2
   workers), one client and two clients at a time.

Database: ``aurora_bench_ingest`` on the server of DATABASE_URL (or
BENCH_INGEST_DATABASE_URL), dropped and created again.
"""
from __future__ import annotations

import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks._support import database_url, recreate_database

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "aurora_bench_ingest"
ACCOUNTS = 50
REGIONS = ["sg", "hk", "us-east", "eu-west"]
RESULTS = ["delivered"] * 90 + ["soft_bounce"] * 4 + ["format_error", "not_exist", "not_exist", "reject",
                                                      "junk_mail", "junk_mail"]
API_RECORDS = 10_000
API_REQUESTS = 12


# --- the parent ------------------------------------------------------------------


def main() -> None:
    rows = int(os.environ.get("BENCH_INGEST_ROWS", 1_000_000))
    repeat = int(os.environ.get("BENCH_INGEST_REPEAT", 3))
    url = os.environ.get("BENCH_INGEST_DATABASE_URL") or database_url(DATABASE)
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "0", "SECRET_KEY": os.environ.get("SECRET_KEY", "bench"),
           "SECURE_SSL_REDIRECT": "0", "STATIC_MANIFEST": "0", "LOG_LEVEL": "WARNING"}
    workdir = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        recreate_database(url)  # the database the URL names (BENCH_INGEST_DATABASE_URL included)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        _child(env, "setup")
        path = workdir / "usage.csv"
        double = workdir / "usage-double.csv"
        shuffled = workdir / "usage-shuffled.csv"
        started = time.perf_counter()
        generate(path, rows, seed=1)
        generate(double, rows * 2, seed=2)
        # In a child: the parent's peak RSS would become its children's (ru_maxrss survives fork and exec).
        subprocess.run([sys.executable, "-m", "benchmarks.bench_ingest", "shuffle", str(path), str(shuffled)],
                       cwd=ROOT, check=True)
        print(f"file: {rows:,} rows, {path.stat().st_size / 1e6:.1f} MB, generated in "
              f"{time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.2f}; "
              f"{os.cpu_count()} CPUs", flush=True)
        _psql(url, "DROP TABLE IF EXISTS bench_copy_baseline; CREATE TABLE bench_copy_baseline ("
                   "occurred_at text, account text, region text, service text, result text, quantity text)")

        runs = []
        for run in range(1, repeat + 1):
            _psql(url, "TRUNCATE bench_copy_baseline")
            copy_s = _timed(lambda: _psql(url, f"\\copy bench_copy_baseline FROM '{path}' WITH (FORMAT csv, HEADER)"))
            _empty_usage(url)
            result = _child(env, "import", str(path))
            runs.append((copy_s, result))
            print(f"run {run}: psql \\copy {copy_s:.2f} s, import {result['seconds']:.2f} s "
                  f"(CPU {result['cpu']:.2f} s, child wall {result['wall']:.2f} s), {result['records']:,} records "
                  f"into {result['daily_rows']:,} daily rows; load average {os.getloadavg()[0]:.2f}", flush=True)
        _empty_usage(url)
        double_result = _child(env, "import", str(double))
        _empty_usage(url)
        shuffled_result = _child(env, "import", str(shuffled))

        copy_best = min(c for c, _ in runs)
        import_best = min(r["seconds"] for _, r in runs)
        peak = max(r["rss_peak_kb"] for _, r in runs)
        api = api_throughput(env, path)

        table = [
            ("rows imported", f"{rows:,}", ""),
            ("import time (best of runs)", f"{import_best:.2f} s", ""),
            ("rows/s", f"{rows / import_best:,.0f}", "≥ 100,000"),
            ("psql \\copy, unindexed table (best)", f"{copy_best:.2f} s", ""),
            ("ratio import / psql \\copy", f"{import_best / copy_best:.2f}", "≤ 3"),
            ("ratio, median of runs", f"{statistics.median(r['seconds'] / c for c, r in runs):.2f}", ""),
            ("import CPU in Python (best run)", f"{min(r['cpu'] for _, r in runs):.2f} s", ""),
            ("peak RSS, importing process", _mb(peak), "≤ 200 MB"),
            ("… before the import (Django loaded)", _mb(max(r["rss_start_kb"] for _, r in runs)), ""),
            (f"peak RSS, importing {rows * 2:,} rows", _mb(double_result["rss_peak_kb"]), "flat"),
            (f"rows/s, importing {rows * 2:,} rows", f"{rows * 2 / double_result['seconds']:,.0f}", ""),
            ("import of the rows shuffled (not in time order)", f"{shuffled_result['seconds']:.2f} s", ""),
            ("… its ratio to psql \\copy (best)", f"{shuffled_result['seconds'] / copy_best:.2f}", ""),
            ("API, 1 client: records/s", f"{api['one']['records_per_s']:,.0f}", ""),
            ("API, 1 client: s per 10,000-record request", f"{api['one']['seconds_per_request']:.2f}", ""),
            ("API, 2 clients: records/s", f"{api['two']['records_per_s']:,.0f}", ""),
        ]
        width = max(len(name) for name, _, _ in table)
        print(f"\n{'measure':<{width}}  {'value':>12}  target")
        for name, value, target in table:
            print(f"{name:<{width}}  {value:>12}  {target}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def generate(path: Path, rows: int, seed: int) -> None:
    """Deterministic usage records of one month, as the platform sends them."""
    rng = random.Random(seed)
    accounts = [f"bench-{i:03d}" for i in range(ACCOUNTS)]
    with path.open("w") as f:
        f.write("occurred_at,account,region,service,result,quantity\n")
        lines = []
        for i in range(rows):
            account = accounts[rng.randrange(ACCOUNTS)]
            region = REGIONS[i % 4]
            day = 1 + i * 31 // rows
            clock = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
            kind = rng.random()
            if kind < 0.85:
                lines.append(f"2026-10-{day:02d}T{clock}+08:00,{account},{region},email,"
                             f"{rng.choice(RESULTS)},{rng.randrange(1, 500)}\n")
            elif kind < 0.97:
                lines.append(f"2026-10-{day:02d}T{clock}Z,{account},{region},data_flow,,"
                             f"{rng.randrange(1_000_000) / 1e6:.6f}\n")
            else:
                lines.append(f"2026-10-{day:02d},{account},{region},data_masking,,{rng.randrange(1, 100)}\n")
            if len(lines) >= 10_000:
                f.writelines(lines)
                lines.clear()
        f.writelines(lines)


def shuffle(path: Path, target: Path) -> None:
    """The records of ``path`` in random order (header first)."""
    with path.open() as f:
        header, lines = f.readline(), f.readlines()
    random.Random(3).shuffle(lines)
    with target.open("w") as f:
        f.write(header)
        f.writelines(lines)


def api_throughput(env: dict, path: Path) -> dict:
    """Records/s through POST /api/usage/ with 10,000-record requests."""
    token = _child(env, "token")["token"]
    bodies = []
    with path.open() as f:
        f.readline()
        for _ in range(API_REQUESTS):
            records = []
            for _ in range(API_RECORDS):
                occurred_at, account, region, service, result, quantity = f.readline().rstrip("\n").split(",")
                records.append({"occurred_at": occurred_at, "account": account, "region": region,
                                "service": service, "result": result, "quantity": quantity})
            bodies.append(json.dumps({"records": records}).encode())
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "aurora_billing.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "--timeout", "300", "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        _wait_for(port)
        base = f"http://127.0.0.1:{port}/api/usage/"

        def post(body: bytes, key: str) -> None:
            request = urllib.request.Request(base, data=body, method="POST", headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": key, "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 - local server
                if response.status != 201:
                    raise RuntimeError(f"POST answered {response.status}")

        post(bodies[0], "warm-up")
        started = time.perf_counter()
        for i, body in enumerate(bodies[1:7]):
            post(body, f"one-{i}")
        one = time.perf_counter() - started
        started = time.perf_counter()
        threads = [threading.Thread(target=lambda part=part: [post(b, f"two-{part}-{i}")
                                                              for i, b in enumerate(bodies[7 + part::2])])
                   for part in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        two = time.perf_counter() - started
        two_requests = len(bodies) - 7
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"one": {"records_per_s": 6 * API_RECORDS / one, "seconds_per_request": one / 6},
            "two": {"records_per_s": two_requests * API_RECORDS / two}}


def _psql(url: str, command: str) -> None:
    subprocess.run(["psql", url.replace("postgres://", "postgresql://", 1), "-q", "-v", "ON_ERROR_STOP=1",
                    "-c", command], check=True, stdout=subprocess.DEVNULL)


def _empty_usage(url: str) -> None:
    _psql(url, "TRUNCATE usage_usageimportline, usage_usageimport, usage_dailyusage; CHECKPOINT")


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _child(env: dict, *args: str) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_ingest", *args], cwd=ROOT, env=env,
                          check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def _mb(kilobytes: int) -> str:
    return f"{kilobytes / 1024:.0f} MB"


# --- the children ----------------------------------------------------------------


def child(args: list[str]) -> None:
    if args[0] == "shuffle":
        shuffle(Path(args[1]), Path(args[2]))
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aurora_billing.settings")
    import django

    django.setup()
    from django.utils import timezone

    from accounts.models import Account
    from usage.models import Region

    if args[0] == "setup":
        for code in REGIONS:
            Region.objects.get_or_create(code=code, defaults={"name": code})
        for i in range(ACCOUNTS):
            Account.objects.get_or_create(code=f"bench-{i:03d}", defaults={"name": f"Bench {i}"})
        print(json.dumps({}))
    elif args[0] == "import":
        from usage.ingest import FileSource
        from usage.services import usage_import

        rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started, cpu = time.perf_counter(), time.process_time()
        outcome = usage_import(source=FileSource(Path(args[1]), "csv"), now=timezone.now())
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        batch = outcome.usage_import
        assert not outcome.duplicate
        print(json.dumps({
            "seconds": seconds, "cpu": cpu, "records": batch.records, "daily_rows": batch.daily_rows,
            "rss_start_kb": rss_start, "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }))
    elif args[0] == "token":
        from usage.services import ingest_token_create

        _, raw = ingest_token_create(name="benchmark", created_by=None, now=timezone.now())
        print(json.dumps({"token": raw}))


if __name__ == "__main__":
    child(sys.argv[1:])

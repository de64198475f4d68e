"""Staff export of 1,000,000 lines and PDF statement rendering.

``python -m benchmarks export`` (PostgreSQL; database ``aurora_bench_export``,
or ``BENCH_EXPORT_DATABASE_URL``). Every measurement runs in a fresh child
process, so peak RSS is that of the run alone:

- ``manage.py export_billing`` over 100k, 300k and 1M lines (2,000 accounts ×
  10 periods × 50 lines): seconds, rows/s, peak RSS of the process;
- ``psql \\copy (SELECT …) TO STDOUT`` of the same rows into a file, in the
  same run: the plain SELECT of the columns (the baseline of the ratio) and
  the export's own formatting SELECT;
- the Python formatter (the path SQLite uses) on 100k lines, for scale;
- PDF: seconds per one-page statement (render only, and render + store).

Targets: peak RSS ≤ 150 MB and flat as rows grow; export ≤ 3 × psql; PDF
≤ 0.5 s per statement.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/aurora_bench_export"
ACCOUNTS = 2000
PERIODS = [f"2026-{m:02d}" for m in range(1, 11)]  # 10 periods
REGIONS = [f"bench-r{i}" for i in range(10)]  # × 5 service items = 50 lines per bill
SERVICES = ["email", "data_flow", "dedicated_ip", "data_masking", "bimi_certification"]
LINES = ACCOUNTS * len(PERIODS) * len(REGIONS) * len(SERVICES)
PDF_RUNS = 20
REPEATS = 3


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "SECRET_KEY": os.environ.get("SECRET_KEY", "benchmark-only"),
            "DJANGO_SETTINGS_MODULE": "aurora_billing.settings", "DEBUG": "0", "LOG_LEVEL": "WARNING"}


def _psql_args(url: str, database: str | None = None) -> list[str]:
    u = urlparse(url)
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432),
            "-U", u.username or "postgres", "-d", database or u.path.lstrip("/")]
    return args


def _psql(url: str, sql: str, database: str | None = None) -> str:
    env = {**os.environ, **({"PGPASSWORD": urlparse(url).password} if urlparse(url).password else {})}
    return subprocess.run([*_psql_args(url, database), "-At", "-c", sql], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def _run_measured(args: list[str], *, env: dict | None = None, stdout=subprocess.DEVNULL) -> tuple[float, float]:
    """Run a child process; (wall seconds, peak RSS in MB) of that child alone."""
    start = time.perf_counter()
    child = subprocess.Popen(args, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    err = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({child.returncode}): {err}")
    return elapsed, usage.ru_maxrss / 1024


def prepare(url: str) -> None:
    database = urlparse(url).path.lstrip("/")
    if _psql(url, f"SELECT 1 FROM pg_database WHERE datname = '{database}'", database="postgres") != "1":
        _psql(url, f'CREATE DATABASE "{database}"', database="postgres")
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=_env(url), check=True)
    have = _psql(url, "SELECT count(*) FROM invoices_billline l JOIN invoices_bill b ON b.id = l.bill_id "
                      "JOIN accounts_account a ON a.id = b.account_id WHERE a.code LIKE 'bench-%'")
    if int(have) == LINES:
        return
    print(f"generating {LINES:,} bill lines …", flush=True)
    regions = ", ".join(f"('{r}', 'Bench region {r[-1]}')" for r in REGIONS)
    services = ", ".join(f"('{s}', {i})" for i, s in enumerate(SERVICES))
    periods = ", ".join(f"('{p}')" for p in PERIODS)
    _psql(url, f"""
        BEGIN;
        DELETE FROM invoices_billline WHERE bill_id IN (SELECT b.id FROM invoices_bill b
            JOIN accounts_account a ON a.id = b.account_id WHERE a.code LIKE 'bench-%');
        DELETE FROM invoices_bill WHERE account_id IN (SELECT id FROM accounts_account WHERE code LIKE 'bench-%');
        DELETE FROM accounts_account WHERE code LIKE 'bench-%';
        INSERT INTO usage_region (code, name) VALUES {regions} ON CONFLICT DO NOTHING;
        INSERT INTO accounts_account (code, name, currency, created_at)
            SELECT 'bench-' || lpad(i::text, 4, '0'), 'Bench account ' || i, 'USD', now()
            FROM generate_series(1, {ACCOUNTS}) i;
        INSERT INTO invoices_bill (account_id, period, currency, settled_at, total_amount, funds_applied,
                                   billing_info_snapshot)
            SELECT a.id, p.period, 'USD', now(), 0, 0, '{{}}'::jsonb
            FROM accounts_account a CROSS JOIN (VALUES {periods}) p(period) WHERE a.code LIKE 'bench-%';
        INSERT INTO invoices_billline (bill_id, service_id, region_id, adjustment_for, position, usage_quantity,
            deducted_quantity, billable_quantity, unit_price, currency, amount, paid, balance, status,
            delivered, soft_bounce, format_error, not_exist, reject, junk_mail)
        SELECT b.id, s.code, r.code, '', s.pos * 10 + r.idx,
               q.usage, q.deducted, q.usage - q.deducted, q.price, 'USD',
               q.amount, q.paid, q.amount - q.paid,
               CASE WHEN q.amount - q.paid > 0 THEN 'Overdrawn' ELSE 'Paid' END,
               CASE WHEN s.code = 'email' THEN (q.usage * 0.9)::bigint END,
               CASE WHEN s.code = 'email' THEN q.usage::bigint - (q.usage * 0.9)::bigint - 30 END,
               CASE WHEN s.code = 'email' THEN 10 END, CASE WHEN s.code = 'email' THEN 10 END,
               CASE WHEN s.code = 'email' THEN 5 END, CASE WHEN s.code = 'email' THEN 5 END
        FROM invoices_bill b
        JOIN accounts_account a ON a.id = b.account_id AND a.code LIKE 'bench-%'
        CROSS JOIN (VALUES {services}) s(code, pos)
        CROSS JOIN (SELECT code, row_number() OVER (ORDER BY code) - 1 AS idx FROM usage_region
                    WHERE code LIKE 'bench-r%') r
        CROSS JOIN LATERAL (
            SELECT u.usage, round(u.usage * 0.25, CASE WHEN s.code = 'data_flow' THEN 6 ELSE 0 END) AS deducted,
                   CASE WHEN s.code = 'data_flow' THEN 0.300000 ELSE 0.000300 END AS price,
                   round((u.usage - round(u.usage * 0.25, CASE WHEN s.code = 'data_flow' THEN 6 ELSE 0 END))
                         * CASE WHEN s.code = 'data_flow' THEN 0.3 ELSE 0.0003 END, 2) AS amount,
                   0.00::numeric AS paid
            FROM (SELECT CASE WHEN s.code = 'data_flow' THEN round((b.id % 997 + r.idx) * 1.234567, 6)
                              ELSE (b.id % 9973) * 100 + r.idx + 1000 END::numeric AS usage) u
        ) q;
        COMMIT;
        ANALYZE;
    """)


def _export_sql(url: str, first: str, last: str) -> tuple[str, str]:
    """(the export's formatting SELECT, the plain SELECT of the same rows) with literals."""
    code = (
        "import json, django; django.setup();"
        "from core.periods import Period;"
        "from invoices.export import staff_export_sql;"
        f"sql, params = staff_export_sql(first=Period.parse('{first}'), last=Period.parse('{last}'));"
        "print(json.dumps([sql, params]))"
    )
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=_env(url), check=True, capture_output=True, text=True)
    sql, params = json.loads(out.stdout)
    formatted = sql.replace("%s", "'{}'").format(*params)
    plain_columns = ("a.code, b.period, l.service_id, l.region_id, l.usage_quantity, l.deducted_quantity, "
                     "l.billable_quantity, l.unit_price, l.currency, l.amount, l.paid, l.balance, l.status, "
                     "l.delivered, l.soft_bounce, l.format_error, l.not_exist, l.reject, l.junk_mail, "
                     "l.adjustment_for")
    plain = plain_columns.join([formatted[:len("SELECT ")], formatted[formatted.index(" FROM "):]])
    return formatted, plain


def _psql_copy(url: str, select: str, target: Path) -> tuple[float, int]:
    env = {**os.environ, **({"PGPASSWORD": urlparse(url).password} if urlparse(url).password else {})}
    with target.open("wb") as out:
        start = time.perf_counter()
        subprocess.run([*_psql_args(url), "-c", f"\\copy ({select}) TO STDOUT WITH (FORMAT csv)"],
                       stdout=out, check=True, env=env)
        elapsed = time.perf_counter() - start
    with target.open("rb") as f:
        rows = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    return elapsed, rows


def _digest(path: Path, *, skip_header: bool = False) -> str:
    """SHA-256 of a file read in blocks (the parent stays small: a forked
    child's peak RSS starts from the parent's)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        if skip_header:
            f.readline()
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def bench_export(url: str) -> list[tuple]:
    """Each size: export and both psql runs alternate ``REPEATS`` times; the
    best time of each counts (the machine is shared), the worst RSS."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        out = Path(tmp) / "export.csv"
        for last in (PERIODS[0], PERIODS[2], PERIODS[-1]):
            formatted, plain = _export_sql(url, PERIODS[0], last)
            export_s, rss, plain_s, formatted_s = [], [], [], []
            for _ in range(REPEATS):
                seconds, peak = _run_measured(
                    [PYTHON, "manage.py", "export_billing", "--period", PERIODS[0], "--to", last,
                     "--output", str(out)], env=_env(url))
                export_s.append(seconds)
                rss.append(peak)
                seconds, plain_rows = _psql_copy(url, plain, Path(tmp) / "plain.csv")
                plain_s.append(seconds)
                seconds, formatted_rows = _psql_copy(url, formatted, Path(tmp) / "formatted.csv")
                formatted_s.append(seconds)
            lines = _count_lines(out) - 1
            assert plain_rows == formatted_rows == lines, (plain_rows, formatted_rows, lines)
            same = _digest(Path(tmp) / "formatted.csv") == _digest(out, skip_header=True)
            best = min(export_s)
            rows.append((lines, best, lines / best, max(rss), min(plain_s), best / min(plain_s), min(formatted_s),
                         same))
    return rows


PYTHON_PATH_CODE = """
import django, sys, time
django.setup()
from core.periods import Period
from invoices.export import STAFF_CSV_COLUMNS, csv_chunks, staff_export_rows
first = last = Period.parse(sys.argv[1])
start = time.perf_counter()
with open(sys.argv[2], "w") as out:
    for chunk in csv_chunks(STAFF_CSV_COLUMNS, staff_export_rows(first=first, last=last)):
        out.write(chunk)
elapsed = time.perf_counter() - start
print(elapsed)
"""


def bench_python_path(url: str) -> tuple[int, float, float]:
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        out = Path(tmp) / "py.csv"
        stdout = Path(tmp) / "stdout"
        with stdout.open("w") as so:
            _, rss = _run_measured([PYTHON, "-c", PYTHON_PATH_CODE, PERIODS[0], str(out)], env=_env(url), stdout=so)
        seconds = float(stdout.read_text().split()[-1])
        lines = _count_lines(out) - 1
    return lines, seconds, rss


PDF_CODE = """
import datetime as dt, io, json, os, statistics, sys, tempfile, time
from decimal import Decimal as D
import django
django.setup()
from django.conf import settings
from django.db import transaction
from accounts.models import Account
from invoices.models import Bill, BillLine
from invoices.pdf import statement_pdf_render, statement_snapshot
from invoices.statements import statement_issue
from pypdf import PdfReader

runs = int(sys.argv[1])
now = dt.datetime(2026, 11, 5, 2, tzinfo=dt.UTC)
settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                     "OPTIONS": {"location": tempfile.mkdtemp(prefix="bench_pdf_")}}}
SNAPSHOT = {"contact_name": "王芳", "company_name": "星辰科技有限公司", "website": "https://xingchen.example",
            "company_address": "上海市浦东新区世纪大道100号", "detailed_address": "环球金融中心 25 楼"}
# A realistic month (the demo's shape): email and data flow in 4 regions, 5 other lines.
SHAPE = [("email", r) for r in ("bench-r0", "bench-r1", "bench-r2", "bench-r3")] + [
    ("data_flow", r) for r in ("bench-r0", "bench-r1", "bench-r2", "bench-r3")] + [
    ("dedicated_ip", "bench-r0"), ("dedicated_ip", "bench-r1"), ("data_masking", "bench-r0"),
    ("data_masking", "bench-r2"), ("bimi_certification", "bench-r0")]


def one_page_bill(code):
    account = Account.objects.create(code=code, name="星辰科技有限公司", currency="USD")
    bill = Bill.objects.create(account=account, period="2026-10", currency="USD", settled_at=now,
                               total_amount=D("428.66"), funds_applied=D("100.00"), billing_info_snapshot=SNAPSHOT)
    for i, (service, region) in enumerate(SHAPE):
        email = service == "email"
        BillLine.objects.create(
            bill=bill, position=i, service_id=service, region_id=region, usage_quantity=D("245169"),
            deducted_quantity=D("45169"), billable_quantity=D("200000"), unit_price=D("0.000280"), currency="USD",
            amount=D("56.00"), paid=D("6.00"), balance=D("50.00"), status="Overdrawn",
            **({"delivered": 221720, "soft_bounce": 9337, "format_error": 3535, "not_exist": 5928, "reject": 2801,
                "junk_mail": 7848} if email else {}))
    return bill


def render(bill):
    return statement_pdf_render(snapshot=statement_snapshot(bill=bill, number="AUR-2026-999999", issued_at=now,
                                                            as_of=now))


with transaction.atomic():
    bill = one_page_bill("bench-pdf")
    t0 = time.perf_counter(); first = render(bill)
    cold = time.perf_counter() - t0
    pages = len(PdfReader(io.BytesIO(first)).pages)
    times, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        render(bill)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    issue = []
    for i in range(5):
        other = one_page_bill(f"bench-pdf-{i}")
        t0 = time.perf_counter(); statement_issue(bill=other, now=now); issue.append(time.perf_counter() - t0)
    transaction.set_rollback(True)  # leave the benchmark database as it was
print(json.dumps({"cold": cold, "median": statistics.median(times), "mean": statistics.mean(times),
                  "cpu_median": statistics.median(cpu), "load": os.getloadavg()[0],
                  "max": max(times), "pages": pages, "bytes": len(first), "lines": len(SHAPE),
                  "issue_median": statistics.median(issue)}))
"""


def bench_pdf(url: str) -> dict:
    out = subprocess.run([PYTHON, "-c", PDF_CODE, str(PDF_RUNS)], cwd=ROOT, env=_env(url), check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    url = os.environ.get("BENCH_EXPORT_DATABASE_URL", DEFAULT_URL)
    print(f"database: {urlparse(url).path.lstrip('/')}; {LINES:,} lines = {ACCOUNTS} accounts × {len(PERIODS)} "
          f"periods × {len(SERVICES) * len(REGIONS)} lines", flush=True)
    prepare(url)
    rows = bench_export(url)
    print()
    print(f"staff export (manage.py export_billing --output FILE, a child process each run), best of {REPEATS}")
    print(f"{'lines':>10} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12} {'psql plain s':>13} "
          f"{'ratio':>6} {'psql fmt s':>11} {'same bytes':>10}")
    for lines, seconds, rate, rss, plain, ratio, formatted, same in rows:
        print(f"{lines:>10,} {seconds:>8.2f} {rate:>10,.0f} {rss:>12.1f} {plain:>13.2f} {ratio:>6.2f} "
              f"{formatted:>11.2f} {'yes' if same else 'NO':>10}")
    lines, seconds, rss = bench_python_path(url)
    print(f"\nPython formatter (the SQLite path; server-side cursor): {lines:,} lines in {seconds:.2f} s = "
          f"{lines / seconds:,.0f} rows/s, peak RSS {rss:.1f} MB")
    pdf = bench_pdf(url)
    print(f"\nPDF statement ({pdf['lines']} lines, {pdf['pages']} page, {pdf['bytes']:,} bytes), {PDF_RUNS} renders")
    print(f"{'first (cold)':>13} {'median':>8} {'mean':>8} {'max':>8} {'CPU median':>11} {'issue+store':>12}")
    print(f"{pdf['cold']:>12.3f}s {pdf['median']:>7.3f}s {pdf['mean']:>7.3f}s {pdf['max']:>7.3f}s "
          f"{pdf['cpu_median']:>10.3f}s {pdf['issue_median']:>11.3f}s   (load average {pdf['load']:.1f})")
    ok_rss = max(r[3] for r in rows) <= 150
    ok_ratio = rows[-1][5] <= 3
    ok_pdf = pdf["median"] <= 0.5
    print(f"\ntargets: peak RSS ≤ 150 MB {'ok' if ok_rss else 'MISSED'}; ratio ≤ 3 {'ok' if ok_ratio else 'MISSED'}; "
          f"PDF ≤ 0.5 s {'ok' if ok_pdf else 'MISSED'}")


if __name__ == "__main__":
    main()

"""Usage import on PostgreSQL: the COPY path against the simple path on the
same input, and concurrent imports (and settlement) that lose no update."""
from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection, transaction

from accounts.models import Account
from core.periods import Period, parse_occurred_at
from tests.support import add_price, add_usage, failures, run_concurrently, utc
from usage import services
from usage.ingest import Catalog, FileSource, ImportRejected, loaders
from usage.ingest import totals as ingest_totals
from usage.ingest.loaders import TOO_LARGE
from usage.models import DailyUsage, Region, UsageImport, UsageImportLine
from usage.services import usage_import

pytestmark = pytest.mark.postgres

NOW = utc(2026, 11, 20, 12, 0)
HEADER = "occurred_at,account,region,service,result,quantity\n"
RESULTS = ["delivered", "soft_bounce", "format_error", "not_exist", "reject", "junk_mail"]


def make_catalog() -> dict[str, Account]:
    for code in ("sg", "hk", "us-east"):
        Region.objects.create(code=code, name=code.upper())
    return {code: Account.objects.create(code=code, name=code.title()) for code in ("acme", "beta", "gamma")}


def random_rows(n: int, seed: int) -> list[tuple[str, ...]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        day = dt.date(2026, 9, 25) + dt.timedelta(days=rng.randrange(12))
        hour, minute, second = rng.randrange(24), rng.randrange(60), rng.randrange(60)
        occurred_at = rng.choice([
            day.isoformat(),
            f"{day}T{hour:02d}:{minute:02d}:{second:02d}+08:00",
            f"{day}T{hour:02d}:{minute:02d}:{second:02d}Z",
            f"{day}T{hour:02d}:{minute:02d}:{second:02d}.{rng.randrange(10**6):06d}-05:30",
        ])
        service = rng.choice(["email", "email", "email", "data_flow", "dedicated_ip", "data_masking",
                              "bimi_certification"])
        result = rng.choice(RESULTS) if service == "email" else ""
        quantity = f"{rng.randrange(10**7) / 10**6:.6f}" if service == "data_flow" else str(rng.randrange(5000))
        rows.append((occurred_at, rng.choice(["acme", "beta", "gamma"]), rng.choice(["sg", "hk", "us-east"]),
                     service, result, quantity))
    return rows


def write_csv(path: Path, rows) -> Path:
    path.write_text(HEADER + "".join(",".join(row) + "\n" for row in rows))
    return path


def expected_totals(rows) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for occurred_at, account, region, service, result, quantity in rows:
        totals[(account, region, service, result, parse_occurred_at(occurred_at))] += Decimal(quantity)
    return dict(totals)


def daily_state() -> dict[tuple, tuple[Decimal, Decimal]]:
    return {(r.account.code, r.region_id, r.service_id, r.result, r.day): (r.quantity, r.billed_quantity)
            for r in DailyUsage.objects.select_related("account")}


def import_state(batch: UsageImport) -> dict:
    lines = {(line.account.code, line.region_id, line.service_id, line.result, line.day): (line.quantity, line.late)
             for line in batch.lines.select_related("account")}
    return {"records": batch.records, "daily_rows": batch.daily_rows, "late_rows": batch.late_rows,
            "lines": lines, "daily": daily_state()}


def import_staged(path: Path):
    """The COPY path as it runs after lock contention: flushes only staged,
    every daily key written at the end."""
    source = FileSource(path, "csv")
    return services._import_once(source, source.sha256, Catalog.load(), "copy", NOW, None, pipelined=False)


@pytest.fixture
def sends(monkeypatch):
    """How many times the COPY loader sent its statements while reading."""
    sent = []
    send = loaders.CopyLoader._send

    def counting(self, query):
        sent.append(query)
        send(self, query)

    monkeypatch.setattr(loaders.CopyLoader, "_send", counting)
    return sent


def by_time(rows, stragglers: int = 0):
    """``rows`` in time order, but for ``stragglers`` of the first day's moved to the end."""
    rows = sorted(rows, key=lambda row: parse_occurred_at(row[0]))
    return rows[stragglers:] + rows[:stragglers]


@pytest.mark.parametrize("order", ["random", "time"])
def test_pipelined_staged_and_simple_paths_give_identical_results(postgres, tmp_path, monkeypatch, sends, order):
    accounts = make_catalog()
    # Existing usage: acme's September is settled (late), beta's is not.
    row = add_usage(accounts["acme"], "sg", "email", "2026-09-28", "1000")
    DailyUsage.objects.filter(pk=row.pk).update(billed_quantity=1000)
    add_usage(accounts["beta"], "hk", "data_flow", "2026-09-29", "1.5")
    rows = random_rows(20_000, seed=3)
    monkeypatch.setattr(ingest_totals, "PROGRESS_EVERY", 256)
    if order == "random":
        # Small flushes of every day: the COPY path writes partial totals of one key many times.
        monkeypatch.setattr(ingest_totals, "FLUSH_KEYS", 100)
    else:
        # Days are written one after the other while the file is read; the
        # first day comes back at the end.
        rows = by_time(rows, stragglers=5)
    path = write_csv(tmp_path / "mixed.csv", rows)
    before = daily_state()

    states = {}
    for name, run in (("pipelined", lambda: usage_import(source=FileSource(path, "csv"), now=NOW).usage_import),
                      ("staged", lambda: import_staged(path)),
                      ("simple", lambda: usage_import(source=FileSource(path, "csv"), now=NOW,
                                                      method="simple").usage_import)):
        with transaction.atomic():
            sent = len(sends)
            batch = run()
            assert batch.method == ("simple" if name == "simple" else "copy")
            if name == "pipelined":
                assert len(sends) - sent > 10  # written while reading
            elif name == "staged":
                assert len(sends) == sent
            states[name] = import_state(batch)
            transaction.set_rollback(True)
        assert daily_state() == before

    assert states["pipelined"] == states["staged"] == states["simple"]
    # … and they are right: every key holds its records' sum, added to what was there.
    state = states["pipelined"]
    expected = expected_totals(rows)
    assert {key: quantity for key, (quantity, _) in state["lines"].items()} == expected
    for key, (quantity, billed) in state["daily"].items():
        previous = before.get(key, (Decimal(0), Decimal(0)))
        assert quantity == previous[0] + expected.get(key, 0)
        assert billed == previous[1]
    late = {key for key, (_, is_late) in state["lines"].items() if is_late}
    assert late == {key for key in expected if key[0] == "acme" and key[4].month == 9}
    assert state["late_rows"] == len(late) > 0
    assert state["records"] == 20_000
    assert state["daily_rows"] == len(expected)


def rows_by_day(accounts=("acme", "beta"), days=range(1, 11), per_day: int = 100, quantity: str = "3"):
    return [(f"2026-10-{day:02d}T{i % 24:02d}:30:00+08:00", accounts[i % len(accounts)], "sg" if i % 3 else "hk",
             "email", "delivered", quantity) for day in days for i in range(per_day)]


def test_a_bad_record_after_days_were_written_stores_nothing(postgres, tmp_path, monkeypatch, sends):
    accounts = make_catalog()
    add_usage(accounts["acme"], "sg", "email", "2026-10-02", "1000")
    monkeypatch.setattr(ingest_totals, "PROGRESS_EVERY", 64)
    before = daily_state()
    rows = rows_by_day()
    bad = write_csv(tmp_path / "bad.csv", [*rows, ("2026-10-10", "acme", "sg", "email", "delivered", "-1")])
    with pytest.raises(ImportRejected) as info:
        usage_import(source=FileSource(bad, "csv"), now=NOW)
    assert len(sends) > 5  # days were written before the bad record was read …
    assert info.value.report() == ["line 1002: quantity must be ≥ 0"]
    assert daily_state() == before  # … and undone
    assert not UsageImport.objects.exists() and not UsageImportLine.objects.exists()
    # The connection is fit for use: the fixed file imports.
    fixed = write_csv(tmp_path / "fixed.csv", rows)
    batch = usage_import(source=FileSource(fixed, "csv"), now=NOW).usage_import
    assert batch.records == 1000 and daily_state() != before


def test_a_daily_total_too_large_found_while_reading_rejects_the_file(postgres, tmp_path, monkeypatch, sends):
    make_catalog()
    monkeypatch.setattr(ingest_totals, "PROGRESS_EVERY", 64)
    huge = [("2026-10-01", "acme", "sg", "data_flow", "", "99999999999999.999999")] * 2
    path = write_csv(tmp_path / "huge.csv", [*huge, *rows_by_day(days=range(2, 8))])
    with pytest.raises(ImportRejected) as info:
        usage_import(source=FileSource(path, "csv"), now=NOW)
    assert len(sends) == 1  # the first day's write failed while the file was read; nothing was sent after it
    assert info.value.report() == [TOO_LARGE]
    assert not DailyUsage.objects.exists() and not UsageImport.objects.exists()
    # A bad record is reported before a total that does not fit.
    path = write_csv(tmp_path / "huge-and-bad.csv", [*huge, *rows_by_day(days=range(2, 8)),
                                                     ("2026-10-09", "nobody", "sg", "email", "delivered", "1")])
    with pytest.raises(ImportRejected) as info:
        usage_import(source=FileSource(path, "csv"), now=NOW)
    assert info.value.report() == ["line 604: unknown account 'nobody'"]


@pytest.mark.parametrize("method", ["copy", "simple"])
def test_a_daily_total_too_large_to_store_rejects_the_file(postgres, tmp_path, method):
    make_catalog()
    path = write_csv(tmp_path / "big.csv", [("2026-10-05", "acme", "sg", "data_flow", "", "99999999999999.999999")] * 2)
    with pytest.raises(ImportRejected) as info:
        usage_import(source=FileSource(path, "csv"), now=NOW, method=method)
    assert info.value.report() == [TOO_LARGE]
    assert not DailyUsage.objects.exists() and not UsageImport.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["copy", "copy written while read", "simple"])
def test_concurrent_imports_of_the_same_daily_rows_lose_no_update(postgres, tmp_path, monkeypatch, method):
    if method == "copy written while read":
        monkeypatch.setattr(ingest_totals, "PROGRESS_EVERY", 64)  # the rows below are in time order
        method = "copy"
    accounts = make_catalog()
    for region in ("sg", "hk"):
        add_usage(accounts["acme"], region, "email", "2026-10-05", "1000")
    keys = [(f"2026-10-0{d}T1{h}:00:00+08:00", account, region, "email", "delivered")
            for d in (5, 6) for h in range(4) for account in ("acme", "beta") for region in ("sg", "hk")]
    expected: dict[tuple, Decimal] = defaultdict(Decimal)
    expected[("acme", "sg", "email", "delivered", dt.date(2026, 10, 5))] += 1000
    expected[("acme", "hk", "email", "delivered", dt.date(2026, 10, 5))] += 1000
    for round_ in range(4):
        paths = []
        for worker in range(2):
            rows = [(*keys[i % len(keys)], str(1 + worker)) for i in range(3000 + round_)]
            paths.append(write_csv(tmp_path / f"r{round_}-w{worker}.csv", rows))
            for key, total in expected_totals(rows).items():
                expected[key] += total
        outcomes = run_concurrently(*[
            (lambda p=path: usage_import(source=FileSource(p, "csv"), now=NOW, method=method)) for path in paths])
        assert not failures(outcomes), failures(outcomes)
        assert not any(o.duplicate for o in outcomes)
    assert {key: quantity for key, (quantity, _) in daily_state().items()} == dict(expected)
    assert UsageImport.objects.count() == 8


@pytest.mark.django_db(transaction=True)
def test_concurrent_imports_of_the_same_file_import_it_once(postgres, tmp_path):
    make_catalog()
    path = write_csv(tmp_path / "once.csv", [("2026-10-05", "acme", "sg", "email", "delivered", "5")] * 1000)
    outcomes = run_concurrently(*[lambda: usage_import(source=FileSource(path, "csv"), now=NOW)] * 3)
    assert not failures(outcomes), failures(outcomes)
    assert sorted(o.duplicate for o in outcomes) == [False, True, True]
    assert len({o.usage_import.pk for o in outcomes}) == 1
    assert list(DailyUsage.objects.values_list("quantity", flat=True)) == [Decimal("5000")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("order", ["days mixed", "time"])
def test_import_during_settlement_is_billed_or_marked_late_never_lost(postgres, tmp_path, monkeypatch, order):
    """An import of October usage races the settlement of October: what
    the bill did not cover is exactly what the import log marks late."""
    from aurora_billing.settlement import accounts_settle

    if order == "time":  # written day by day while the file is read
        monkeypatch.setattr(ingest_totals, "PROGRESS_EVERY", 256)
    from invoices.models import BillLine

    accounts = make_catalog()
    add_price("email", "sg", "0.001000")
    add_price("email", "hk", "0.001000")
    for day in range(1, 29):
        add_usage(accounts["acme"], "sg", "email", f"2026-10-{day:02d}", "100")
    rows = [(f"2026-10-{1 + i % 28:02d}", "acme", "sg" if i % 3 else "hk", "email", "delivered", "7")
            for i in range(5000)]
    path = write_csv(tmp_path / "race.csv", by_time(rows) if order == "time" else rows)
    october = Period(2026, 10)
    outcomes = run_concurrently(
        lambda: usage_import(source=FileSource(path, "csv"), now=NOW),
        lambda: accounts_settle(account_ids=[accounts["acme"].pk], period=october, now=october.bill_time),
    )
    assert not failures(outcomes), failures(outcomes)
    usage = DailyUsage.objects.filter(account=accounts["acme"])
    total = sum(r.quantity for r in usage)
    billed = sum(r.billed_quantity for r in usage)
    assert total == 2800 + 5000 * 7
    late = sum(UsageImportLine.objects.filter(late=True).values_list("quantity", flat=True), Decimal(0))
    assert total - billed == late
    assert billed == sum(BillLine.objects.filter(bill__account=accounts["acme"]).values_list(
        "usage_quantity", flat=True))


@pytest.mark.django_db(transaction=True)
def test_an_account_locked_elsewhere_makes_a_pipelined_import_start_again_and_wait(postgres, tmp_path, monkeypatch,
                                                                                 caplog, sends):
    """gamma shows up only at the end of a file written while read, and a
    settlement (here: a plain lock) holds it: the import must not wait
    while it holds acme and beta out of order, so it starts again, writes
    at the end and waits for gamma in id order; nothing is lost."""
    import psycopg

    make_catalog()
    monkeypatch.setattr(ingest_totals, "PROGRESS_EVERY", 64)
    rows = [*rows_by_day(), ("2026-10-10T23:00:00+08:00", "gamma", "sg", "email", "delivered", "7")]
    path = write_csv(tmp_path / "gamma-last.csv", rows)
    settings = connection.settings_dict
    blocker = psycopg.connect(dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"],
                              port=settings["PORT"] or 5432, password=settings["PASSWORD"] or None)
    try:
        blocker.execute("SELECT 1 FROM accounts_account WHERE code = 'gamma' FOR UPDATE")
        outcome = []
        importer = threading.Thread(target=lambda: outcome.extend(run_concurrently(
            lambda: usage_import(source=FileSource(path, "csv"), now=NOW))))
        with caplog.at_level(logging.INFO, logger="aurora.usage"):
            importer.start()
            waiting = 0
            for _ in range(300):
                blocker.execute("SELECT pg_stat_clear_snapshot()")  # a fresh look in this transaction
                waiting = blocker.execute("SELECT count(*) FROM pg_stat_activity "
                                          "WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))").fetchone()[0]
                if waiting:
                    break
                time.sleep(0.1)
            assert waiting == 1  # the second attempt waits for gamma …
            assert not DailyUsage.objects.exists()
            blocker.commit()  # … until the "settlement" ends
            importer.join(timeout=60)
    finally:
        blocker.close()
    assert len(outcome) == 1 and not failures(outcome), failures(outcome)
    assert len(sends) > 5  # the first attempt wrote while it read, then met gamma
    assert any("importing it again, writing at the end" in record.getMessage() for record in caplog.records)
    assert {key: quantity for key, (quantity, _) in daily_state().items()} == expected_totals(rows)
    assert UsageImport.objects.get().daily_rows == len(expected_totals(rows))

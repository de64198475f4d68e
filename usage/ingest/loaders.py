"""Loading validated day totals into ``DailyUsage``: the two loaders
``usage.services.usage_import`` writes an import with.

- ``CopyLoader`` (PostgreSQL, method ``copy``): day totals travel by COPY,
  pipelined while the file is still being read; set-based statements write
  them as the import's lines and add them to DailyUsage (docs/ingestion.md).
- ``MemoryLoader`` (any database): totals summed in memory, written through
  the ORM.

Both lock the accounts they add usage to, in id order, before they touch
their daily rows (the lock settlement takes).
"""
from __future__ import annotations

import selectors
from decimal import Decimal
from itertools import groupby

import psycopg
from django.db import connection
from psycopg import pq, sql

from accounts.models import Account

from ..models import DailyUsage, UsageImport, UsageImportLine
from .records import MAX_QUANTITY, MEMO_SIZE, Catalog, ImportRejected
from .totals import DayTotals

TOO_LARGE = f"a daily usage total would exceed the largest storable quantity ({MAX_QUANTITY})"


class Contended(Exception):
    """An account the import must lock is locked by another transaction."""


def _lock_accounts(account_ids: set[int]) -> None:
    """Lock the accounts an import adds usage to, in id order."""
    list(Account.objects.select_for_update(no_key=True).filter(pk__in=sorted(account_ids))
         .order_by("pk").values_list("pk", flat=True))


class CopyLoader:
    """PostgreSQL: day totals travel by COPY; set-based statements write
    them as the import's lines and add them to DailyUsage.

    Pipelined (the default), each flush of totals is COPYed into a small
    table and the statement that writes it is sent without waiting for it:
    the database runs it on the other CPU while the reading goes on, and
    its result is read before the next flush. A source in time order is
    flushed day by day (usage.ingest.totals), so the database's share of
    the work (the upsert, and its foreign key checks, made immediate for
    this) overlaps the reading. A key flushed twice is added to DailyUsage
    twice, as it should, and its lines are merged into one at the end.

    Locks: DailyUsage rows of an account are written only under its lock
    (``FOR NO KEY UPDATE``; settlement takes ``FOR UPDATE``). The first
    flush locks its accounts in id order and may wait, as the import holds
    no lock yet. An account that first shows up in a later flush is locked
    ``NOWAIT``: waiting while holding locks out of order could deadlock
    with a settlement or import locking in id order. If it is taken, the
    import raises Contended and is run again not pipelined: every flush
    only staged, then all accounts locked in id order and one statement,
    as an API request (one flush) always is."""

    def __init__(self, catalog: Catalog, batch: UsageImport, *, pipelined: bool = True) -> None:
        self.catalog = catalog
        self.batch = batch
        self.pipelined = pipelined
        self.account_ids: set[int] = set()
        self.locked: set[int] = set()
        self.days: set = set()  # days flushed so far
        self.repeated = False  # a day was flushed twice: its lines may need merging
        self.rows = 0  # lines written
        self.failure: Exception | None = None
        self.sent = False  # a statement was sent whose results are not read yet
        self.prefixes: dict[str, tuple[str, int]] = {}  # kind → (its COPY fields, account id)

    def __enter__(self) -> CopyLoader:
        self.cursor = connection.cursor()
        self.raw = connection.connection  # the psycopg connection
        self.pgconn = self.raw.pgconn
        # Summing and sorting the day totals in memory (the default 4 MB
        # spills a million-record file's totals to disk); this transaction only.
        self.cursor.execute("SET LOCAL work_mem = '64MB'")
        self.cursor.execute("DROP TABLE IF EXISTS usage_import_flush")
        self.cursor.execute("CREATE TEMPORARY TABLE usage_import_flush (account_id bigint NOT NULL, "
                            "region_id text NOT NULL, service_id text NOT NULL, result text NOT NULL, "
                            "day date NOT NULL, quantity numeric NOT NULL)")
        self.foreign_keys = _daily_usage_foreign_keys(self.cursor)
        self.cursor.execute(sql.SQL("SET CONSTRAINTS {} IMMEDIATE").format(self.foreign_keys))
        return self

    def __exit__(self, *exc_info) -> None:
        self._receive()  # the connection must be idle again, whatever happened
        self.cursor.close()

    def add(self, totals: DayTotals) -> None:
        self._receive()
        if isinstance(self.failure, Contended):
            raise self.failure  # start again at once; other failures are raised by finish()
        if self.failure is not None:
            return
        text, ids = self._copy_text(totals)
        self.account_ids |= ids
        self.repeated = self.repeated or not self.days.isdisjoint(totals)
        self.days.update(totals)
        with self.cursor.copy("COPY usage_import_flush FROM STDIN") as copy:
            copy.write(text)
        if not self.pipelined:
            return  # staged: written by write()
        statements = []
        new = ids - self.locked
        if new:
            statements.append(sql.SQL("SELECT id FROM {} WHERE id = ANY({}) ORDER BY id FOR NO KEY UPDATE{}").format(
                sql.Identifier(Account._meta.db_table), sorted(new), sql.SQL(" NOWAIT" if self.locked else "")))
            self.locked |= new
        statements += [self._write_rows(sql.SQL("TABLE usage_import_flush")), sql.SQL("TRUNCATE usage_import_flush")]
        self._send(sql.SQL("; ").join(statements).as_bytes(self.raw))

    def _copy_text(self, totals: DayTotals) -> tuple[str, set[int]]:
        """COPY text of ``totals``, and the ids of their accounts."""
        prefixes = self.prefixes
        if len(prefixes) >= MEMO_SIZE:
            prefixes.clear()
        parts = []
        ids = set()
        for day, per_day in totals.items():
            day_field = f"\t{day.isoformat()}\t"
            for kind, quantity in per_day.items():
                found = prefixes.get(kind)
                if found is None:
                    account, region, service, result = kind.split(",")
                    account_id = self.catalog.accounts[account]
                    found = prefixes[kind] = ("\t".join(map(_copy_field, (str(account_id), region, service, result))),
                                              account_id)
                parts.append(f"{found[0]}{day_field}{quantity}\n")
                ids.add(found[1])
        return "".join(parts), ids

    def _write_rows(self, rows: sql.Composable) -> sql.Composed:
        """The statement that writes ``rows`` (one per daily key) as lines
        of the import and adds them to DailyUsage, in key order so that
        concurrent writers lock rows in the same order."""
        return sql.SQL(
            """WITH lines AS (
                INSERT INTO usage_usageimportline
                    (usage_import_id, account_id, region_id, service_id, result, day, quantity, late)
                SELECT {batch}, account_id, region_id, service_id, result, day, quantity, false FROM ({rows}) AS rows
                RETURNING account_id, region_id, service_id, result, day, quantity)
            INSERT INTO usage_dailyusage
                (account_id, region_id, service_id, result, day, quantity, billed_quantity, updated_at)
            SELECT account_id, region_id, service_id, result, day, quantity, 0, {now} FROM lines
            ORDER BY account_id, region_id, service_id, result, day
            ON CONFLICT (account_id, region_id, service_id, result, day) DO UPDATE
            SET quantity = usage_dailyusage.quantity + EXCLUDED.quantity, updated_at = EXCLUDED.updated_at"""
        ).format(batch=self.batch.pk, rows=rows, now=self.batch.imported_at)

    def _send(self, query: bytes) -> None:
        """Sends ``query`` (statements without parameters) and returns at once."""
        self.pgconn.send_query(query)
        self.sent = True
        while self.pgconn.flush():  # the connection is non-blocking: wait until all is sent
            self._wait(selectors.EVENT_WRITE)

    def _receive(self) -> None:
        """Waits for the results of what was sent; keeps the first failure."""
        if not self.sent:
            return
        self.sent = False
        error = None
        while (result := self._next_result()) is not None:
            if result.status == pq.ExecStatus.FATAL_ERROR and error is None:
                error = psycopg.errors.error_from_result(result, encoding=self.raw.info.encoding)
            elif (result.command_status or b"").startswith(b"INSERT"):
                self.rows += result.command_tuples
        if error is None or self.failure is not None:
            return
        if isinstance(error, psycopg.errors.LockNotAvailable):
            self.failure = Contended(str(error).strip())
        elif isinstance(error, psycopg.errors.NumericValueOutOfRange):
            self.failure = ImportRejected.single(TOO_LARGE)
        else:
            self.failure = error

    def _next_result(self):
        """The next result of what was sent, or None after the last. Waits
        in a selector, not in libpq, so that other threads run meanwhile."""
        while True:
            self.pgconn.consume_input()
            if not self.pgconn.is_busy():
                return self.pgconn.get_result()
            self._wait(selectors.EVENT_READ)

    def _wait(self, event: int) -> None:
        """Until the connection's socket is ready for ``event`` (any number
        of file descriptors: no select())."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.pgconn.socket, event)
            selector.select()

    def finish(self) -> None:
        """Waits until every flush is written; raises what went wrong."""
        self._receive()
        if self.failure is not None:
            raise self.failure

    def write(self) -> int:
        """After ``finish``: staged, the accounts are locked in id order and
        every key written; pipelined, the lines of a key flushed twice are
        merged. Returns the number of daily rows (one line each)."""
        if not self.pipelined:
            _lock_accounts(self.account_ids)
            self.cursor.execute(self._write_rows(sql.SQL(
                "SELECT account_id, region_id, service_id, result, day, sum(quantity) AS quantity "
                "FROM usage_import_flush GROUP BY account_id, region_id, service_id, result, day")))
            self.rows = self.cursor.rowcount
        elif self.repeated:
            self.cursor.execute(sql.SQL(
                """WITH flushed AS (
                    DELETE FROM usage_usageimportline WHERE usage_import_id = {batch}
                    RETURNING account_id, region_id, service_id, result, day, quantity)
                INSERT INTO usage_usageimportline
                    (usage_import_id, account_id, region_id, service_id, result, day, quantity, late)
                SELECT {batch}, account_id, region_id, service_id, result, day, sum(quantity), false FROM flushed
                GROUP BY account_id, region_id, service_id, result, day""").format(batch=self.batch.pk))
            self.rows = self.cursor.rowcount
        # Back to Django's INITIALLY DEFERRED, for the rest of an enclosing transaction.
        self.cursor.execute(sql.SQL("SET CONSTRAINTS {} DEFERRED").format(self.foreign_keys))
        self.cursor.execute("DROP TABLE usage_import_flush")
        return self.rows


def _copy_field(text: str) -> str:
    """``text`` as a field of COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _daily_usage_foreign_keys(cursor) -> sql.Composable:
    cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f' "
                   "ORDER BY conname", [DailyUsage._meta.db_table])
    return sql.SQL(", ").join(sql.Identifier(name) for (name,) in cursor.fetchall())


class MemoryLoader:
    """Any database: day totals summed in memory (one Decimal per daily
    key), written through the ORM. SQLite serialises writers, so the
    read-add-write of DailyUsage cannot lose an update there; on
    PostgreSQL the rows are read FOR UPDATE."""

    def __init__(self, catalog: Catalog, batch: UsageImport) -> None:
        self.catalog = catalog
        self.batch = batch
        self.totals: dict[tuple, Decimal] = {}  # (account id, region, service, result, day) → quantity
        self.account_ids: set[int] = set()

    def __enter__(self) -> MemoryLoader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.totals = {}

    def add(self, totals: DayTotals) -> None:
        accounts = self.catalog.accounts
        for day, per_day in totals.items():
            for kind, quantity in per_day.items():
                account, region, service, result = kind.split(",")
                key = (accounts[account], region, service, result, day)
                self.totals[key] = self.totals.get(key, 0) + quantity
                self.account_ids.add(key[0])

    def finish(self) -> None:
        pass

    def write(self) -> int:
        """The import's lines, then each added to its DailyUsage row, under
        the accounts' locks. Returns the number of daily rows."""
        _lock_accounts(self.account_ids)
        batch, now = self.batch, self.batch.imported_at
        lines = []
        for (account_id, region, service, result, day), quantity in self.totals.items():
            if quantity > MAX_QUANTITY:
                raise ImportRejected.single(TOO_LARGE)
            lines.append(UsageImportLine(usage_import=batch, account_id=account_id, region_id=region,
                                         service_id=service, result=result, day=day, quantity=quantity))
        UsageImportLine.objects.bulk_create(lines, batch_size=1000)
        lines.sort(key=lambda line: (line.account_id, line.day))
        for account_id, group in groupby(lines, key=lambda line: line.account_id):
            group = list(group)
            existing = {
                (row.region_id, row.service_id, row.result, row.day): row
                for row in DailyUsage.objects.select_for_update().filter(
                    account_id=account_id, day__in={line.day for line in group})
            }
            changed, created = [], []
            for line in group:
                row = existing.get((line.region_id, line.service_id, line.result, line.day))
                if row is None:
                    created.append(DailyUsage(account_id=account_id, region_id=line.region_id,
                                              service_id=line.service_id, result=line.result, day=line.day,
                                              quantity=line.quantity))
                    continue
                row.quantity += line.quantity
                if row.quantity > MAX_QUANTITY:
                    raise ImportRejected.single(TOO_LARGE)
                row.updated_at = now
                changed.append(row)
            DailyUsage.objects.bulk_update(changed, ["quantity", "updated_at"], batch_size=1000)
            DailyUsage.objects.bulk_create(created, batch_size=1000)
        return len(lines)

"""Writes of the usage app: importing usage records and ingest tokens.

``usage_import`` is the one way usage enters the database (import_usage,
``POST /api/usage/`` and seed_demo). One import, in one transaction:

1. write the import log's UsageImport row (a concurrent import of the
   same content or Idempotency-Key waits on it, then finds it);
2. validate and sum the source's records per daily key (usage.ingest);
   any bad record rejects the whole source and nothing is stored;
3. write one UsageImportLine per daily key with the quantity this import
   brings, and add it to DailyUsage.quantity (never to
   ``billed_quantity``: what settlement has not covered is billed by the
   next settlement, exactly once);
4. mark lines late whose (account, period) is already settled.

On PostgreSQL (method ``copy``, CopyLoader) the day totals travel by COPY
and set-based statements write them; a large source in time order is
written while it is still being read (pipelined), so the database works
on the other CPU. Elsewhere (method ``simple``, SQLite) the totals are
kept in memory and written through the ORM. Both give the same rows
(tests/test_ingest_postgres.py runs them against each other).

Concurrency: DailyUsage rows of an account are written only while the
import holds the account's row lock (``FOR NO KEY UPDATE``), until
commit; locks are taken in id order, or without waiting (CopyLoader
says how). Settlement locks the account row ``FOR UPDATE`` first, so an
import and a settlement of the same account never interleave: the late
marking is exact, and neither can deadlock on the other's daily rows.
Two imports of one account serialise on the lock; ``quantity = quantity
+ excluded`` loses no update either way.
"""
from __future__ import annotations

import json
import logging
import secrets
import selectors
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby

import psycopg
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models.functions import TruncMonth
from psycopg import pq, sql

from accounts.models import Account
from core.periods import Period

from .ingest import MAX_QUANTITY, MEMO_SIZE, Catalog, DayTotals, FileSource, ImportRejected, RecordsSource, aggregate
from .models import DailyUsage, ImportOrigin, IngestToken, UsageImport, UsageImportLine
from .selectors import token_digest, usage_import_late_periods

log = logging.getLogger("aurora.usage")

TOKEN_PREFIX = "aur_ingest_"
TOO_LARGE = f"a daily usage total would exceed the largest storable quantity ({MAX_QUANTITY})"
NUMERIC_OUT_OF_RANGE = "22003"  # PostgreSQL's SQLSTATE


@dataclass(frozen=True)
class ImportOutcome:
    usage_import: UsageImport
    # True: this content (file) or Idempotency-Key was imported before and
    # ``usage_import`` is that earlier import; nothing was stored now.
    duplicate: bool = False


class _AlreadyImported(Exception):
    pass


class _Contended(Exception):
    """An account the import must lock is locked by another transaction."""


def default_method() -> str:
    return "copy" if connection.vendor == "postgresql" else "simple"


def usage_import(*, source: FileSource | RecordsSource, now, progress=None, method: str | None = None
                 ) -> ImportOutcome:
    """Import every record of ``source`` or none (ImportRejected lists the
    bad ones). A file whose content was imported before, or a source with
    an Idempotency-Key used before, is not imported again. ``method``:
    "copy" or "simple" (default: by database)."""
    fingerprint = source.sha256
    previous = _previous_import(source, fingerprint)
    if previous is not None:
        return ImportOutcome(previous, duplicate=True)
    method = method or default_method()
    catalog = Catalog.load(only=source.token.account if source.token is not None else None)
    try:
        try:
            batch = _import_once(source, fingerprint, catalog, method, now, progress, pipelined=True)
        except _Contended as exc:
            # Writing as it read, the import met an account locked by another
            # transaction; it cannot wait while it holds others (see
            # CopyLoader), so it starts again and writes at the end.
            log.info("usage import of %s: %s; importing it again, writing at the end", source.name, exc)
            batch = _import_once(source, fingerprint, catalog, method, now, progress, pipelined=False)
    except _AlreadyImported:
        return ImportOutcome(_previous_import(source, fingerprint), duplicate=True)
    except DataError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == NUMERIC_OUT_OF_RANGE:
            raise ImportRejected.single(TOO_LARGE) from None
        raise
    log.info("usage import #%s %s: %s records into %s daily rows (%s late) by %s",
             batch.pk, batch.name, batch.records, batch.daily_rows, batch.late_rows, method)
    return ImportOutcome(batch)


def _import_once(source, fingerprint: str, catalog: Catalog, method: str, now, progress, *,
                 pipelined: bool) -> UsageImport:
    with transaction.atomic():
        batch = UsageImport(
            origin=source.origin, name=source.name[:500], format=source.format, content_sha256=fingerprint,
            idempotency_key=source.idempotency_key, token=source.token, method=method, imported_at=now,
        )
        try:
            with transaction.atomic():
                batch.save()  # an import of the same content or key waits here until this one ends
        except IntegrityError:
            raise _AlreadyImported from None  # a concurrent import of the same content or key won
        loader = CopyLoader(catalog, batch, pipelined=pipelined) if method == "copy" else MemoryLoader(catalog, batch)
        with loader:
            batch.records = aggregate(source, catalog=catalog, flush=loader.add, progress=progress)
            loader.finish()
            batch.daily_rows = loader.write()
        batch.late_rows = _lines_mark_late(batch)
        if source.origin == ImportOrigin.API:
            batch.response = json.dumps(import_answer(batch))
        batch.save(update_fields=["records", "daily_rows", "late_rows", "response"])
    return batch


def _previous_import(source, fingerprint: str) -> UsageImport | None:
    if source.idempotency_key:  # the token's own key
        return UsageImport.objects.filter(token=source.token, idempotency_key=source.idempotency_key).first()
    if source.origin == ImportOrigin.FILE:
        return UsageImport.objects.filter(origin=ImportOrigin.FILE, content_sha256=fingerprint).first()
    return None


def _lock_accounts(account_ids: set[int]) -> None:
    """Lock the accounts an import adds usage to, in id order."""
    list(Account.objects.select_for_update(no_key=True).filter(pk__in=sorted(account_ids))
         .order_by("pk").values_list("pk", flat=True))


def _lines_mark_late(batch: UsageImport) -> int:
    """Mark the lines whose (account, period) already has billed usage, i.e.
    a settled period: their quantity is late usage (billing-rules §5).
    Returns how many lines are late. (An import changes no
    ``billed_quantity``, so this reads the same before or after step 3.)"""
    lines = UsageImportLine.objects.filter(usage_import=batch).order_by()
    months = set(lines.annotate(month=TruncMonth("day")).values_list("account_id", "month").distinct())
    if not months:
        return 0
    first = min(month for _, month in months)
    end = Period.of_day(max(month for _, month in months)).end_day
    billed = set(
        DailyUsage.objects.filter(account_id__in={a for a, _ in months}, billed_quantity__gt=0,
                                  day__gte=first, day__lt=end)
        .annotate(month=TruncMonth("day")).order_by().values_list("account_id", "month").distinct()
    )
    late = 0
    for account_id, month in sorted(months & billed):
        period = Period.of_day(month)
        late += lines.filter(account_id=account_id, day__gte=period.first_day, day__lt=period.end_day).update(
            late=True)
    return late


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
    import raises _Contended and is run again not pipelined: every flush
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
        if isinstance(self.failure, _Contended):
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
            self.failure = _Contended(str(error).strip())
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


def import_answer(batch: UsageImport) -> dict:
    """The API's answer for an accepted request (also its replay)."""
    return {
        "import": batch.pk,
        "records": batch.records,
        "daily_rows": batch.daily_rows,
        "late_rows": batch.late_rows,
        "late_periods": [{"account": code, "period": period}
                         for code, period in usage_import_late_periods(usage_import=batch)],
    }


# --- HTTP API ---------------------------------------------------------------


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was used before for a different request."""

    def __init__(self, usage_import: UsageImport) -> None:
        self.usage_import = usage_import
        super().__init__(f"this Idempotency-Key was used by import #{usage_import.pk} for different records")


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: str  # JSON
    replayed: bool


def usage_ingest_request(*, token: IngestToken, idempotency_key: str, records: list, now) -> ApiAnswer:
    """One ``POST /api/usage/``: import ``records`` once per token and
    Idempotency-Key. A replay with the same records returns the first
    answer and stores nothing; the same key with other records raises
    IdempotencyKeyReused. Another token's key is another key. A record for
    an account the token does not write is a bad record. Rejected requests
    store nothing, not even their key."""
    source = RecordsSource(records=records, name="POST /api/usage/", origin=ImportOrigin.API,
                           idempotency_key=idempotency_key, token=token)
    IngestToken.objects.filter(pk=token.pk).update(last_used_at=now)
    outcome = usage_import(source=source, now=now)
    batch = outcome.usage_import
    if outcome.duplicate and (batch.origin != ImportOrigin.API or batch.content_sha256 != source.sha256):
        raise IdempotencyKeyReused(batch)
    return ApiAnswer(status=201, body=batch.response, replayed=outcome.duplicate)


# --- ingest tokens --------------------------------------------------------------


def ingest_token_create(*, name: str, account: Account | None = None, created_by, now
                        ) -> tuple[IngestToken, str]:
    """A new token: returns (token, the token text). The text is not stored
    and cannot be shown again. ``account``: the only account it writes
    (a tenant token); None: every account (a platform token)."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = IngestToken.objects.create(name=name, account=account, prefix=raw[:16], token_sha256=token_digest(raw),
                                       created_at=now, created_by=created_by)
    log.info("ingest token #%s %r (%s) created by %s", token.pk, name, token.scope, created_by)
    return token, raw


def ingest_token_set_account(*, token: IngestToken, account: Account | None, changed_by) -> bool:
    """Let ``token`` write only ``account`` (None: every account). False
    when that was already its scope. Its imports and keys stay its own."""
    if token.account_id == (account.pk if account is not None else None):
        return False
    IngestToken.objects.filter(pk=token.pk).update(account=account)
    token.account = account
    log.info("ingest token #%s now writes %s (changed by %s)", token.pk, token.scope, changed_by)
    return True


def ingest_token_revoke(*, token: IngestToken, revoked_by, now) -> bool:
    """Revoke ``token`` (False when it was already revoked). Requests with
    it answer 401 from now on; its imports stay in the log."""
    revoked = IngestToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=revoked_by)
    if revoked:
        log.info("ingest token #%s revoked by %s", token.pk, revoked_by)
    return bool(revoked)


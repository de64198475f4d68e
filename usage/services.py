"""Writes of the usage app: importing usage records and ingest tokens.

``usage_import`` is the one way usage enters the database (import_usage,
``POST /api/usage/`` and seed_demo). One import, in one transaction:

1. validate and sum the source's records per daily key (usage.ingest);
   any bad record rejects the whole source and nothing is stored;
2. write the import log: a UsageImport row, then one UsageImportLine per
   daily key with the quantity this import brings;
3. add the lines' quantities to DailyUsage.quantity (never to
   ``billed_quantity``: what settlement has not covered is billed by the
   next settlement, exactly once);
4. mark lines late whose (account, period) is already settled.

On PostgreSQL (method ``copy``) the day totals travel by COPY into a
temporary staging table; one set-based statement then writes the log
lines and upserts DailyUsage from them. Elsewhere (method ``simple``,
SQLite) the totals are kept in memory and written through the ORM. Both
give the same rows (tests/test_ingest_postgres.py runs both against each
other).

Concurrency: the accounts an import touches are locked (``FOR NO KEY
UPDATE``, in id order) before step 3, until commit. Settlement locks the account
row ``FOR UPDATE`` first, so an import and a settlement of the same account
never interleave: the late marking is exact, and neither can deadlock on
the other's daily rows. Two imports of one account serialise on the lock
for their (short) final steps only; ``quantity = quantity + excluded``
loses no update either way.
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from itertools import groupby

from django.db import DataError, IntegrityError, connection, transaction
from django.db.models.functions import TruncMonth

from accounts.models import Account
from aurora_billing.periods import Period

from .ingest import MAX_QUANTITY, Catalog, DayTotals, FileSource, ImportRejected, RecordsSource, aggregate
from .models import DailyUsage, ImportOrigin, IngestToken, UsageImport, UsageImportLine
from .selectors import token_digest, usage_import_late_periods

log = logging.getLogger("aurora.usage")

TOKEN_PREFIX = "aur_ingest_"
TOO_LARGE = f"a daily usage total would exceed the largest storable quantity ({MAX_QUANTITY})"


@dataclass(frozen=True)
class ImportOutcome:
    usage_import: UsageImport
    # True: this content (file) or Idempotency-Key was imported before and
    # ``usage_import`` is that earlier import; nothing was stored now.
    duplicate: bool = False


class _AlreadyImported(Exception):
    pass


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
    catalog = Catalog.load()
    try:
        with transaction.atomic(), (CopyLoader if method == "copy" else MemoryLoader)(catalog) as loader:
            records = aggregate(source, catalog=catalog, flush=loader.add, progress=progress)
            batch = UsageImport(
                origin=source.origin, name=source.name[:500], format=source.format, content_sha256=fingerprint,
                idempotency_key=source.idempotency_key, token=source.token, method=method, records=records,
                imported_at=now,
            )
            try:
                with transaction.atomic():
                    batch.save()
            except IntegrityError:
                raise _AlreadyImported from None  # a concurrent import of the same content or key won
            _lock_accounts(loader.account_ids)
            batch.daily_rows = loader.write(batch, now)
            batch.late_rows = _lines_mark_late(batch)
            if source.origin == ImportOrigin.API:
                batch.response = json.dumps(import_answer(batch))
            batch.save(update_fields=["daily_rows", "late_rows", "response"])
    except _AlreadyImported:
        return ImportOutcome(_previous_import(source, fingerprint), duplicate=True)
    except DataError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == "22003":  # numeric_value_out_of_range
            raise ImportRejected.single(TOO_LARGE) from None
        raise
    log.info("usage import #%s %s: %s records into %s daily rows (%s late) by %s",
             batch.pk, batch.name, batch.records, batch.daily_rows, batch.late_rows, method)
    return ImportOutcome(batch)


def _previous_import(source, fingerprint: str) -> UsageImport | None:
    if source.idempotency_key:
        return UsageImport.objects.filter(idempotency_key=source.idempotency_key).first()
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
    """PostgreSQL: day totals COPYed into a temporary staging table; then
    one statement writes the import's lines and adds them to DailyUsage."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.account_ids: set[int] = set()

    def __enter__(self) -> CopyLoader:
        self.cursor = connection.cursor()
        # Summing and sorting the day totals in memory (the default 4 MB
        # spills a million-record file's totals to disk); this transaction only.
        self.cursor.execute("SET LOCAL work_mem = '64MB'")
        self.cursor.execute("DROP TABLE IF EXISTS usage_import_staging")
        self.cursor.execute("CREATE TEMPORARY TABLE usage_import_staging (account_id bigint NOT NULL, "
                            "region_id text NOT NULL, service_id text NOT NULL, result text NOT NULL, "
                            "day date NOT NULL, quantity numeric NOT NULL)")
        return self

    def __exit__(self, *exc_info) -> None:
        self.cursor.close()

    def add(self, totals: DayTotals) -> None:
        accounts = self.catalog.accounts
        with self.cursor.copy("COPY usage_import_staging FROM STDIN") as copy:
            for (account, region, service, result, day), quantity in totals.items():
                account_id = accounts[account]
                self.account_ids.add(account_id)
                copy.write_row((account_id, region, service, result, day, quantity))

    def write(self, batch: UsageImport, now) -> int:
        """The staged totals, summed per daily key, become the import's
        lines and are added to DailyUsage: one INSERT … ON CONFLICT, in key
        order, so that concurrent imports lock rows in the same order.
        Returns the number of daily rows."""
        self.cursor.execute(
            """WITH lines AS (
                INSERT INTO usage_usageimportline
                    (usage_import_id, account_id, region_id, service_id, result, day, quantity, late)
                SELECT %s, account_id, region_id, service_id, result, day, sum(quantity), false
                FROM usage_import_staging
                GROUP BY account_id, region_id, service_id, result, day
                RETURNING account_id, region_id, service_id, result, day, quantity)
            INSERT INTO usage_dailyusage
                (account_id, region_id, service_id, result, day, quantity, billed_quantity, updated_at)
            SELECT account_id, region_id, service_id, result, day, quantity, 0, %s FROM lines
            ORDER BY account_id, region_id, service_id, result, day
            ON CONFLICT (account_id, region_id, service_id, result, day) DO UPDATE
            SET quantity = usage_dailyusage.quantity + EXCLUDED.quantity, updated_at = EXCLUDED.updated_at""",
            [batch.pk, now],
        )
        rows = self.cursor.rowcount
        self.cursor.execute("DROP TABLE usage_import_staging")
        return rows


class MemoryLoader:
    """Any database: day totals summed in memory (one Decimal per daily
    key), written through the ORM. SQLite serialises writers, so the
    read-add-write of DailyUsage cannot lose an update there; on
    PostgreSQL the rows are read FOR UPDATE."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.totals: DayTotals = {}
        self.account_ids: set[int] = set()

    def __enter__(self) -> MemoryLoader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.totals = {}

    def add(self, totals: DayTotals) -> None:
        for key, quantity in totals.items():
            self.totals[key] = self.totals.get(key, 0) + quantity
            self.account_ids.add(self.catalog.accounts[key[0]])

    def write(self, batch: UsageImport, now) -> int:
        """The import's lines, then each added to its DailyUsage row.
        Returns the number of daily rows."""
        accounts = self.catalog.accounts
        lines = []
        for (account, region, service, result, day), quantity in self.totals.items():
            if quantity > MAX_QUANTITY:
                raise ImportRejected.single(TOO_LARGE)
            lines.append(UsageImportLine(usage_import=batch, account_id=accounts[account], region_id=region,
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
    """One ``POST /api/usage/``: import ``records`` once per Idempotency-Key.
    A replay with the same records returns the first answer and stores
    nothing; the same key with other records raises IdempotencyKeyReused.
    Rejected requests store nothing, not even their key."""
    source = RecordsSource(records=records, name="POST /api/usage/", origin=ImportOrigin.API,
                           idempotency_key=idempotency_key, token=token)
    IngestToken.objects.filter(pk=token.pk).update(last_used_at=now)
    outcome = usage_import(source=source, now=now)
    batch = outcome.usage_import
    if outcome.duplicate and (batch.origin != ImportOrigin.API or batch.content_sha256 != source.sha256):
        raise IdempotencyKeyReused(batch)
    return ApiAnswer(status=201, body=batch.response, replayed=outcome.duplicate)


# --- ingest tokens --------------------------------------------------------------


def ingest_token_create(*, name: str, created_by, now) -> tuple[IngestToken, str]:
    """A new token: returns (token, the token text). The text is not stored
    and cannot be shown again."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = IngestToken.objects.create(name=name, prefix=raw[:16], token_sha256=token_digest(raw),
                                       created_at=now, created_by=created_by)
    log.info("ingest token #%s %r created by %s", token.pk, name, created_by)
    return token, raw


def ingest_token_revoke(*, token: IngestToken, revoked_by, now) -> bool:
    """Revoke ``token`` (False when it was already revoked). Requests with
    it answer 401 from now on; its imports stay in the log."""
    revoked = IngestToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=revoked_by)
    if revoked:
        log.info("ingest token #%s revoked by %s", token.pk, revoked_by)
    return bool(revoked)


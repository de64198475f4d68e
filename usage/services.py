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
from dataclasses import dataclass

from django.db import DataError, IntegrityError, connection, transaction
from django.db.models.functions import TruncMonth

from accounts.models import Account
from core.periods import Period

from .ingest import Catalog, FileSource, ImportRejected, RecordsSource, aggregate
from .ingest.loaders import TOO_LARGE, Contended, CopyLoader, MemoryLoader
from .models import DailyUsage, ImportOrigin, IngestToken, UsageImport, UsageImportLine
from .selectors import token_digest, usage_import_late_periods
from .signals import usage_imported

log = logging.getLogger("aurora.usage")

TOKEN_PREFIX = "aur_ingest_"
NUMERIC_OUT_OF_RANGE = "22003"  # PostgreSQL's SQLSTATE


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
    catalog = Catalog.load(only=source.token.account if source.token is not None else None)
    try:
        try:
            batch = _import_once(source, fingerprint, catalog, method, now, progress, pipelined=True)
        except Contended as exc:
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
    usage_imported.send(sender=UsageImport, import_id=batch.pk)
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


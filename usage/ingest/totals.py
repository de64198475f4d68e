"""Validate rows and sum their quantities per daily key.

``aggregate_rows`` adds each valid record's quantity to the total of its
daily key (account, region, service item, result, UTC+8 day) and hands the
totals to ``flush`` whenever ``FLUSH_KEYS`` of them have accumulated, so
memory stays flat however many rows a source has. After a bad row nothing
more is flushed, every later row is still checked, and ImportRejected lists
the bad rows at the end.

``aggregate`` reads a large plain CSV file (see FileScan) with one forked
worker per CPU, each over a range of whole lines; the workers send their
totals and errors to the importing process, which alone talks to the
database.
"""
from __future__ import annotations

import datetime as dt
import io
import multiprocessing
import os
import re
import traceback
from collections.abc import Callable
from decimal import Decimal
from multiprocessing.connection import wait

from aurora_billing.periods import parse_occurred_at

from ..models import WHOLE_QUANTITY_SERVICES
from .records import FIELDS, MEMO_SIZE, Catalog, ErrorList, ImportRejected, check_quantity
from .sources import READ_CHUNK, FileSource, RecordsSource, csv_rows, read_header

# Daily totals held in memory before they are flushed.
FLUSH_KEYS = 100_000
PROGRESS_EVERY = 1 << 16  # rows
# Files from this size on are read by parallel workers (when plain).
PARALLEL_MIN_BYTES = 16 << 20
MAX_WORKERS = 4

# ":MM:SS" (00–59 each) at positions 13–18 of an instant, and offsets of
# whole hours: the UTC+8 day of such an instant does not depend on its
# minutes and seconds, so days are memoised by the instant without them.
_MINUTES_SECONDS = frozenset(f":{m:02d}:{s:02d}" for m in range(60) for s in range(60))
_WHOLE_HOUR_OFFSETS = frozenset(["Z"] + [f"{sign}{h:02d}:00" for sign in "+-" for h in range(24)])
_HOUR_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")

# (account code, region, service, result, day) → quantity
DayTotals = dict[tuple[str, str, str, str, dt.date], Decimal]
Flush = Callable[[DayTotals], None]
Progress = Callable[[int, int], None]  # (records, bytes read)


def aggregate(source: FileSource | RecordsSource, *, catalog: Catalog, flush: Flush,
              progress: Progress | None = None, workers: int | None = None) -> int:
    """Validate and sum every record of ``source``; returns how many there
    were. ``workers``: processes for a large plain CSV file (default: one
    per CPU, at most MAX_WORKERS)."""
    if workers is None:
        workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if (isinstance(source, FileSource) and source.format == "csv" and source.scan.plain and workers > 1
            and source.size >= PARALLEL_MIN_BYTES and "fork" in multiprocessing.get_all_start_methods()):
        return _aggregate_in_workers(source, catalog=catalog, flush=flush, progress=progress, workers=workers)
    with source.rows() as rows:
        return aggregate_rows(rows, catalog=catalog, flush=flush, progress=progress)


def aggregate_rows(rows, *, catalog: Catalog, flush: Flush, progress: Progress | None = None) -> int:
    """Validate every row of ``rows`` (Rows) and sum quantities per daily
    key; ``flush`` must consume the totals it is given before it returns.
    Returns the number of records; raises ImportRejected after reading
    every row if any is bad."""
    errors = ErrorList(rows.label, rows.error_cap)
    totals: DayTotals = {}
    hour_days: dict[str, dt.date] = {}  # instant without ":MM:SS" → day
    days: dict[str, dt.date] = {}  # any other occurred_at → day
    wholes: dict[str, Decimal] = {}  # quantity text → value: whole numbers
    fractions: dict[str, Decimal] = {}  # … and the others
    count = blank = 0

    def checkpoint() -> None:
        if progress is not None:
            progress(count - blank, rows.bytes_read())
        if len(totals) >= FLUSH_KEYS:
            if not errors.total:
                flush(totals)
            totals.clear()
        for memo in (hour_days, days, wholes, fractions):
            if len(memo) >= MEMO_SIZE:
                memo.clear()

    iterator = iter(rows)
    while True:
        try:
            for row in iterator:
                count += 1
                if not count & (PROGRESS_EVERY - 1):
                    checkpoint()
                try:
                    occurred_at, account, region, service, result, quantity = row
                except (TypeError, ValueError):
                    if row == [] or row == ["\n"]:  # a blank line
                        blank += 1
                    else:
                        errors.add(rows.position(count), catalog.reason(row))
                    continue
                # The memoised path; what is missing is computed by the rules
                # of Catalog.validate, which also words any failure.
                by_hour = occurred_at[13:19] in _MINUTES_SECONDS and occurred_at[19:] in _WHOLE_HOUR_OFFSETS
                day = hour_days.get(occurred_at[:13] + occurred_at[19:]) if by_hour else days.get(occurred_at)
                value = wholes.get(quantity)
                if value is None:
                    value = fractions.get(quantity)
                    if value is not None and service in WHOLE_QUANTITY_SERVICES:
                        value = None
                if day is None or value is None:
                    try:
                        if day is None:
                            day = parse_occurred_at(occurred_at)
                            if by_hour and _HOUR_FORM.match(occurred_at):
                                hour_days[occurred_at[:13] + occurred_at[19:]] = day
                            else:
                                days[occurred_at] = day
                        if value is None:
                            value = check_quantity(quantity, service)
                            (wholes if value == value.to_integral_value() else fractions)[quantity] = value
                    except ValueError:
                        errors.add(rows.position(count), catalog.reason(row))
                        continue
                key = (account, region, service, result, day)
                total = totals.get(key)
                if total is not None:
                    totals[key] = total + value
                    continue
                # A new daily key: are its codes valid?
                if (account, region, service, result) not in catalog.valid_kinds:
                    try:
                        catalog.check_kind(account, region, service, result)
                    except ValueError:
                        errors.add(rows.position(count), catalog.reason(row))
                        continue
                totals[key] = value
        except rows.error_types as exc:  # one unreadable row; the next ones can still be read
            count += 1
            hint = " (a quote that is never closed?)" if "end of data" in str(exc) else ""
            errors.add(rows.position(count), f"unreadable: {exc}{hint}")
            continue
        break
    checkpoint()
    if errors.total:
        raise errors.rejected()
    if totals:
        flush(totals)
    return count - blank


# --- parallel workers ---------------------------------------------------------


class _Range(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a file."""

    def __init__(self, path, start: int, end: int) -> None:
        self.file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.file.seek(start)
        self.left = end - start
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = self.file.readinto(memoryview(buffer)[:max(0, min(len(buffer), self.left))]) or 0
        self.left -= size
        self.read_bytes += size
        return size

    def close(self) -> None:
        self.file.close()
        super().close()


def _line_ranges(source: FileSource, parts: int) -> tuple[int, list[tuple[int, int, int]]]:
    """The header's end, and ``parts`` ranges (start, end, first line
    number) of whole lines after it."""
    with source.path.open("rb") as f:
        read_header(f)
        body = f.tell()
        cuts = [body]
        for part in range(1, parts):
            f.seek(max(cuts[-1], body + (source.size - body) * part // parts))
            f.readline()
            cuts.append(f.tell())
        cuts.append(source.size)
        ranges, line = [], 2
        f.seek(body)
        for start, end in zip(cuts, cuts[1:], strict=False):
            ranges.append((start, end, line))
            left = end - start
            while left > 0:
                chunk = f.read(min(left, READ_CHUNK))
                line += chunk.count(b"\n")
                left -= len(chunk)
    return body, [r for r in ranges if r[1] > r[0]]


def _worker(source: FileSource, catalog: Catalog, start: int, end: int, first_line: int, conn) -> None:
    """In a forked process: aggregate one range, send everything to ``conn``.
    It never uses the parent's database connection."""
    try:
        raw = _Range(source.path, start, end)
        rows = csv_rows(io.BufferedReader(raw, buffer_size=1 << 16), list(FIELDS), plain=True,
                        first_line=first_line)
        rows.bytes_read = lambda: raw.read_bytes
        count = aggregate_rows(rows, catalog=catalog, flush=lambda totals: conn.send(("totals", totals)),
                               progress=lambda records, read: conn.send(("progress", records, read)))
        conn.send(("done", count))
    except ImportRejected as exc:
        conn.send(("rejected", exc.errors, exc.total))
    except BaseException:  # noqa: BLE001 - reported by the parent
        conn.send(("failed", traceback.format_exc()))
    finally:
        conn.close()


def _aggregate_in_workers(source: FileSource, *, catalog: Catalog, flush: Flush, progress: Progress | None,
                          workers: int) -> int:
    body, ranges = _line_ranges(source, workers)
    if not ranges:
        return 0
    context = multiprocessing.get_context("fork")
    pending, processes = {}, []
    for index, (start, end, first_line) in enumerate(ranges):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(source, catalog, start, end, first_line, sender),
                                  daemon=True)
        process.start()
        sender.close()
        pending[receiver] = index
        processes.append(process)
    errors = ErrorList("line")
    records = 0
    seen = [(0, 0)] * len(ranges)  # per worker: records, bytes
    failure = None
    try:
        while pending:
            for receiver in wait(list(pending)):
                try:
                    message = receiver.recv()
                except EOFError:
                    failure = failure or "an import worker ended without an answer"
                    del pending[receiver]
                    continue
                index = pending[receiver]
                kind = message[0]
                if kind == "totals":
                    if not errors.total and failure is None:
                        flush(message[1])
                elif kind == "progress":
                    seen[index] = (message[1], message[2])
                    if progress is not None:
                        progress(sum(r for r, _ in seen), body + sum(b for _, b in seen))
                elif kind == "done":
                    records += message[1]
                    del pending[receiver]
                elif kind == "rejected":
                    errors.merge(message[1], message[2])
                    del pending[receiver]
                else:
                    failure = message[1]
                    del pending[receiver]
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    if failure is not None:
        raise RuntimeError(f"import worker failed:\n{failure}")
    if errors.total:
        raise errors.rejected()
    return records


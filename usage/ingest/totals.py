"""Validate records and sum their quantities per daily key.

``aggregate_lines`` adds each valid record's quantity to the total of its
daily key (account, region, service item, result, UTC+8 day) and hands
totals to ``flush``: at every checkpoint (``PROGRESS_EVERY`` records) those
of the days that got no record since the previous checkpoint, since a
source in time order is done with them (so the COPY loader can write them
while the rest is read); all of them whenever ``FLUSH_KEYS`` have
accumulated, so memory stays flat however many records a source has; and
the rest at the end. A key may be flushed more than once. After a bad
record nothing more is flushed, every later one is still checked, and
ImportRejected lists the bad ones at the end.

The loop is the import's cost in Python (about a microsecond per record):
a record is split with two ``partition`` calls, and its day, quantity and
codes come from memos keyed by text; only a miss runs the rules. Reading
with several processes was tried and dropped: on the two shared CPUs it
measured slower (docs/ingestion.md).
"""
from __future__ import annotations

import datetime as dt
import gc
import re
from collections.abc import Callable
from contextlib import contextmanager
from decimal import Decimal

from core.periods import parse_occurred_at

from .records import FIELDS, MEMO_SIZE, SMALL_MEMO_SIZE, Catalog, ErrorList, check_quantity
from .sources import FileSource, RecordsSource

# Daily totals held in memory before they are flushed.
FLUSH_KEYS = 100_000
PROGRESS_EVERY = 1 << 16  # rows

# An instant "YYYY-MM-DDTHH:MM:SS±hh:00" (or "Z"): its UTC+8 day does not
# depend on minutes and seconds, so it is memoised per hour. The memo of
# tails (what follows the hour) says which instants qualify.
_MINUTES_SECONDS = frozenset(f":{m:02d}:{s:02d}" for m in range(60) for s in range(60))
_WHOLE_HOUR_OFFSETS = frozenset(["Z"] + [f"{sign}{h:02d}:00" for sign in "+-" for h in range(24)])
_HOUR_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")

# day → kind → quantity; a kind is the text "account,region,service,result"
# (the codes of a valid record: Catalog.kinds)
DayTotals = dict[dt.date, dict[str, Decimal]]
Flush = Callable[[DayTotals], None]
Progress = Callable[[int, int], None]  # (records, bytes read)


def aggregate(source: FileSource | RecordsSource, *, catalog: Catalog, flush: Flush,
              progress: Progress | None = None) -> int:
    """Validate and sum every record of ``source``; returns how many there were."""
    with source.lines() as lines, _no_cycle_collection():
        return aggregate_lines(lines, catalog=catalog, flush=flush, progress=progress)


@contextmanager
def _no_cycle_collection():
    """The loop makes no reference cycles, but its millions of short-lived
    tuples would make the cycle collector walk every object over and over."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _tail_offset(tail: str) -> str:
    """The offset of an instant's ``tail`` (":MM:SS±hh:mm") when its day is
    memoised per hour, else ""."""
    if tail[:6] in _MINUTES_SECONDS and tail[6:] in _WHOLE_HOUR_OFFSETS:
        return tail[6:]
    return ""


def aggregate_lines(lines, *, catalog: Catalog, flush: Flush, progress: Progress | None = None) -> int:
    """Validate every record of ``lines`` (Lines) and sum quantities per
    daily key; ``flush`` must consume the totals it is given before it
    returns (they are cleared then). Returns the number of records; raises
    ImportRejected after reading every line if any record is bad."""
    errors = ErrorList(lines.label, lines.error_cap)
    # day → "account,region,service,result" → quantity: days with records
    # since the last checkpoint, and days without (flushed at the next one)
    totals: DayTotals = {}
    resting: DayTotals = {}
    kinds = catalog.kinds
    tails: dict[str, str] = {}  # occurred_at after its hour → offset, or "" (see _tail_offset)
    hour_days: dict[str, dt.date] = {}  # "YYYY-MM-DDTHH" + offset → day
    days: dict[str, dt.date] = {}  # any other occurred_at → day
    # quantity text → value: texts without a point (valid for every service
    # item), and texts with one (valid for data_flow only: check_quantity)
    wholes: dict[str, Decimal] = {}
    fractions: dict[str, Decimal] = {}
    count = blank = keys = 0

    def send(days: DayTotals) -> None:
        nonlocal keys
        if days and not errors.total:
            flush(days)
        keys -= sum(map(len, days.values()))
        days.clear()

    def checkpoint() -> None:
        if progress is not None:
            progress(count - blank, lines.bytes_read())
        send(resting)  # days that got no record since the last checkpoint
        if keys >= FLUSH_KEYS:
            send(totals)
        resting.update(totals)
        totals.clear()
        for memo, size in ((tails, MEMO_SIZE), (hour_days, MEMO_SIZE), (days, SMALL_MEMO_SIZE),
                           (wholes, SMALL_MEMO_SIZE), (fractions, SMALL_MEMO_SIZE)):
            if len(memo) >= size:
                memo.clear()

    for line in lines:
        count += 1
        if not count & (PROGRESS_EVERY - 1):
            checkpoint()
        try:
            occurred_at, _, rest = line.partition(",")
        except AttributeError:  # a RowProblem
            errors.add(lines.position(count), catalog.reason(line))
            continue
        kind, _, quantity = rest.rpartition(",")
        # The memoised path; what is missing is computed by the rules of
        # Catalog.validate, which also words any failure.
        tail = occurred_at[13:]
        offset = tails.get(tail)
        if offset is None:
            offset = tails[tail] = _tail_offset(tail)
        day = hour_days.get(occurred_at[:13] + offset) if offset else days.get(occurred_at)
        value = wholes.get(quantity)
        if value is None:
            value = fractions.get(quantity)
            if value is not None:
                found = kinds.get(kind)
                if found is None or found.whole:
                    value = None
        if day is None or value is None:
            if not line.strip():
                blank += 1
                continue
            fields = line.removesuffix("\n").split(",")
            try:
                if len(fields) != len(FIELDS):
                    raise ValueError
                found = catalog.kind(*fields[1:5])
                if day is None:
                    day = parse_occurred_at(occurred_at)
                    if offset and _HOUR_FORM.match(occurred_at):
                        hour_days[occurred_at[:13] + offset] = day
                    else:
                        days[occurred_at] = day
                if value is None:
                    value = check_quantity(fields[5], found.service)
                    (fractions if "." in quantity else wholes)[quantity] = value
            except ValueError:
                errors.add(lines.position(count), catalog.reason(line))
                continue
        per_day = totals.get(day)
        if per_day is None:
            per_day = resting.pop(day, None)
            if per_day is None:
                per_day = {}
            totals[day] = per_day
        total = per_day.get(kind)
        if total is not None:
            per_day[kind] = total + value
            continue
        if kind not in kinds:  # a new daily key: are its codes valid?
            try:
                catalog.kind(*kind.split(","))
            except (ValueError, TypeError):
                errors.add(lines.position(count), catalog.reason(line))
                continue
        per_day[kind] = value
        keys += 1
    if progress is not None:
        progress(count - blank, lines.bytes_read())
    if errors.total:
        raise errors.rejected()
    resting.update(totals)
    send(resting)  # the rest, in one flush
    return count - blank

"""Reading and validating usage records (interfaces.md "Usage records";
billing-rules §1–§2). No writes: ``usage.services.usage_import`` loads what
``aggregate_usage`` produces.

A source (a CSV or JSON Lines file, or a list of records from the HTTP API)
yields rows of six text fields in the order of ``FIELDS``. ``aggregate_usage``
validates every row and adds its quantity to the total of its daily key
(account, region, service item, result, UTC+8 day); the totals are handed to
a ``flush`` callback whenever ``FLUSH_KEYS`` of them have accumulated, so
memory stays flat however many rows a file has. Nothing is flushed once a
row has failed: an import is all or nothing, and the report lists every bad
row as ``line N: reason`` (``record N`` for the API).

One function, ``Catalog.validate``, states every rule. The hot loop only
memoises its parts (the code combination, the day of an ``occurred_at``, the
value of a quantity text) and falls back to it on any miss, so a cached
answer is always the answer ``validate`` gave.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from accounts.models import Account
from aurora_billing.money import QUANTITY_DIGITS, QUANTITY_PLACES, parse_decimal
from aurora_billing.periods import parse_occurred_at

from .models import CATALOG_ORDER, EMAIL_RESULTS, WHOLE_QUANTITY_SERVICES, Region

if TYPE_CHECKING:
    from .models import IngestToken

FIELDS = ("occurred_at", "account", "region", "service", "result", "quantity")
FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Bad rows listed in a report; the rest are counted.
ERROR_LIST_CAP = 100
# Daily totals held in memory before they are flushed to the loader.
FLUSH_KEYS = 100_000
# Memo sizes: each memo is emptied when it reaches its size.
MEMO_SIZE = 200_000
PROGRESS_EVERY = 1 << 16  # rows
MAX_QUANTITY = Decimal(10) ** (QUANTITY_DIGITS - QUANTITY_PLACES) - Decimal(10) ** -QUANTITY_PLACES
READ_CHUNK = 1 << 20

# ":00" … ":59": a seconds field at positions 16–18 of an instant.
_SECONDS = frozenset(f":{s:02d}" for s in range(60))
# ``YYYY-MM-DDTHH:MM`` followed by ``:SS``: such an instant's day does not
# depend on its seconds, so days are memoised without them.
_MINUTE_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
# What undecodable bytes become when a CSV file is read (surrogateescape).
_SURROGATE = re.compile("[\udc80-\udcff]")

# (account code, region, service, result, day) → quantity
DayTotals = dict[tuple[str, str, str, str, dt.date], Decimal]


class RecordError(NamedTuple):
    position: int | None  # line number (files), record index (API); None: the whole source
    reason: str


class ImportRejected(Exception):
    """Bad input: nothing was stored. ``errors`` holds the first
    ``ERROR_LIST_CAP`` bad rows, ``total`` counts them all."""

    def __init__(self, errors: list[RecordError], total: int, label: str = "line") -> None:
        self.errors = errors
        self.total = total
        self.label = label
        super().__init__(self.summary())

    @classmethod
    def single(cls, reason: str, position: int | None = None, label: str = "line") -> ImportRejected:
        return cls([RecordError(position, reason)], 1, label)

    def summary(self) -> str:
        noun = f"bad {self.label}" if self.total == 1 else f"bad {self.label}s"
        return f"{self.total:,} {noun}; nothing was stored"

    def report(self) -> list[str]:
        """``line N: reason`` for each listed error, then how many more."""
        lines = [f"{self.label} {e.position}: {e.reason}" if e.position is not None else e.reason for e in self.errors]
        more = self.total - len(self.errors)
        if more > 0:
            lines.append(f"… and {more:,} more bad {self.label}{'s' if more != 1 else ''}")
        return lines


class ErrorList:
    def __init__(self, label: str, cap: int | None = ERROR_LIST_CAP) -> None:
        self.label = label
        self.cap = cap  # None: keep every error
        self.errors: list[RecordError] = []
        self.total = 0

    def add(self, position: int, reason: str) -> None:
        self.total += 1
        if self.cap is None or len(self.errors) < self.cap:
            self.errors.append(RecordError(position, reason))

    def rejected(self) -> ImportRejected:
        return ImportRejected(self.errors, self.total, self.label)


class RowProblem:
    """Stands in for a row that could not even be split into fields (bad
    JSON, a non-object, bad UTF-8). It does not unpack, so the hot loop
    reports ``reason`` through its one slow branch."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class InvalidRecord(ValueError):
    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


class Catalog:
    """The codes a record may use, read once per import."""

    def __init__(self, accounts: dict[str, int], regions: set[str]) -> None:
        self.accounts = accounts  # code → id
        self.regions = regions
        # (account, region, service, result) combinations found valid
        self.valid_kinds: set[tuple[str, str, str, str]] = set()

    @classmethod
    def load(cls) -> Catalog:
        return cls(dict(Account.objects.values_list("code", "id")),
                   set(Region.objects.values_list("code", flat=True)))

    def check_kind(self, account: str, region: str, service: str, result: str) -> None:
        """InvalidRecord with every problem of the code combination."""
        key = (account, region, service, result)
        if key in self.valid_kinds:
            return
        reasons = []
        if account not in self.accounts:
            reasons.append(f"unknown account {account!r}" if account else "account is empty")
        if region not in self.regions:
            reasons.append(f"unknown region {region!r}" if region else "region is empty")
        if service not in CATALOG_ORDER:
            reasons.append(f"unknown service {service!r} (one of {', '.join(CATALOG_ORDER)})"
                           if service else "service is empty")
        elif service == "email":
            if not result:
                reasons.append(f"email needs a result (one of {', '.join(EMAIL_RESULTS)})")
            elif result not in EMAIL_RESULTS:
                reasons.append(f"unknown email result {result!r} (one of {', '.join(EMAIL_RESULTS)})")
        elif result:
            reasons.append(f"{service} takes no result, got {result!r}")
        if reasons:
            raise InvalidRecord(reasons)
        if len(self.valid_kinds) >= MEMO_SIZE:
            self.valid_kinds.clear()
        self.valid_kinds.add(key)

    def validate(self, occurred_at: str, account: str, region: str, service: str, result: str,
                 quantity: str) -> tuple[dt.date, Decimal]:
        """Every rule for one record: its day and quantity, or InvalidRecord
        listing all its problems."""
        reasons: list[str] = []
        day = value = None
        try:
            self.check_kind(account, region, service, result)
        except InvalidRecord as exc:
            reasons += exc.reasons
        try:
            day = parse_occurred_at(occurred_at)
        except ValueError as exc:
            reasons.append(str(exc))
        try:
            value = check_quantity(quantity, service)
        except ValueError as exc:
            reasons.append(str(exc))
        if reasons:
            raise InvalidRecord(reasons)
        return day, value


def check_quantity(text: str, service: str) -> Decimal:
    """A quantity ≥ 0 with at most 6 decimal places that fits the column;
    a whole number for every service item but data_flow."""
    if not text.strip():
        raise ValueError("quantity is empty")
    value = parse_decimal(text, places=QUANTITY_PLACES, what="quantity")
    if value > MAX_QUANTITY:
        raise ValueError(f"quantity {text!r} is too large (at most {MAX_QUANTITY})")
    if service in WHOLE_QUANTITY_SERVICES and value != value.to_integral_value():
        raise ValueError(f"{service} quantity must be a whole number, got {text!r}")
    return value + 0  # 0 + -0 == 0: no negative zero reaches the database


def _reason(catalog: Catalog, row: tuple[str, ...]) -> str:
    """Every problem of a row that failed, in one line."""
    if _SURROGATE.search("".join(row)):
        return "not valid UTF-8"
    try:
        catalog.validate(*row)
    except InvalidRecord as exc:
        return str(exc)
    raise AssertionError(f"row {row!r} failed a rule that Catalog.validate accepts")


# --- sources ------------------------------------------------------------------


class Rows:
    """Iterable of six-field rows plus where the last one came from
    (``label`` ``position``: "line 12", "record 3")."""

    def __init__(self, rows: Iterable, position: Callable[[], int], *, label: str = "line",
                 error_cap: int | None = ERROR_LIST_CAP, bytes_read: Callable[[], int] = lambda: 0,
                 error_types: tuple = ()) -> None:
        self.rows = rows
        self.position = position
        self.label = label
        self.error_cap = error_cap  # None: report every bad row
        self.bytes_read = bytes_read
        # Raised by the iterator for one bad row; iteration can go on after it
        # (csv.Error: malformed quoting).
        self.error_types = error_types

    def __iter__(self) -> Iterator:
        return iter(self.rows)


@dataclass
class FileSource:
    """A CSV or JSON Lines file, read twice: once to hash its bytes
    (a re-import of the same content is a no-op), once to import it."""

    path: Path
    format: str
    origin: str = "file"
    idempotency_key: str = ""
    token: IngestToken | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @cached_property
    def sha256(self) -> str:
        """Of the file's bytes."""
        digest = hashlib.sha256()
        with self.path.open("rb") as f:
            while chunk := f.read(READ_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    @contextmanager
    def rows(self) -> Iterator[Rows]:
        with self.path.open("rb") as raw:
            yield csv_rows(raw) if self.format == "csv" else jsonl_rows(raw)


@dataclass
class RecordsSource:
    """Records as decoded JSON objects (the HTTP API, seed_demo). Their
    hash is that of their canonical JSON, so a replay that differs
    only in key order or spacing is the same request."""

    records: list
    name: str
    origin: str = "api"
    idempotency_key: str = ""
    token: IngestToken | None = None
    format: str = "json"
    size: int = 0

    @cached_property
    def sha256(self) -> str:
        """Of the records as canonical JSON."""
        text = json.dumps(self.records, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @contextmanager
    def rows(self) -> Iterator[Rows]:
        state = {"index": -1}

        def generate():
            for index, record in enumerate(self.records):
                state["index"] = index
                yield record_fields(record)

        # At most 10,000 records (the API's limit): every bad one is reported.
        yield Rows(generate(), lambda: state["index"], label="record", error_cap=None)


def csv_rows(raw: io.BufferedReader) -> Rows:
    """Rows of a CSV file with the header of interfaces.md (columns in any
    order). Bytes that are not UTF-8 become lone surrogates, which no valid
    field contains, so they are reported on their own line."""
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected.single("the file is empty; expected the header " + ",".join(FIELDS), 1) from None
    except csv.Error as exc:
        raise ImportRejected.single(f"unreadable CSV header: {exc}", 1) from None
    if sorted(header) != sorted(FIELDS):
        raise ImportRejected.single(
            f"header must name the columns {','.join(FIELDS)}; got {','.join(header)!r}", 1)
    rows: Iterable = reader
    if tuple(header) != FIELDS:
        order = [header.index(name) for name in FIELDS]
        rows = map(lambda row: [row[i] for i in order] if len(row) == len(order) else row, reader)
    return Rows(rows, lambda: reader.line_num, bytes_read=raw.tell, error_types=(csv.Error,))


def jsonl_rows(raw: io.BufferedReader) -> Rows:
    """Rows of a JSON Lines file: one object per line with the CSV's keys."""
    state = {"line": 0}

    def generate():
        for number, data in enumerate(raw, start=1):
            state["line"] = number
            if number == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
            if not data.strip():
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                yield RowProblem("not valid UTF-8")
                continue
            try:
                record = json.loads(text.rstrip("\r\n"), parse_float=Decimal, parse_constant=_refuse_constant)
            except ValueError as exc:
                yield RowProblem(f"not valid JSON: {exc}")
                continue
            yield record_fields(record)

    return Rows(generate(), lambda: state["line"], bytes_read=raw.tell)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number")


def record_fields(record: object) -> tuple[str, ...] | RowProblem:
    """A decoded JSON record → its six fields as text. ``result`` may be
    absent or null for service items other than email; ``quantity`` may be
    a JSON number (read exactly, never as a float) or a string."""
    if not isinstance(record, dict):
        return RowProblem("expected a JSON object with the keys " + ", ".join(FIELDS))
    reasons = []
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        reasons.append(f"unknown key(s) {', '.join(map(repr, unknown))}")
    fields = []
    for name in FIELDS:
        value = record.get(name)
        if value is None and name == "result":
            value = ""
        if value is None:
            reasons.append(f"{name} is missing")
        elif name == "quantity" and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            value = str(value)
        elif not isinstance(value, str):
            reasons.append(f"{name} must be a string, got {json.dumps(value, default=str)}")
        fields.append(value)
    if reasons:
        return RowProblem("; ".join(reasons))
    return tuple(fields)


def format_for(path: Path, requested: str | None = None) -> str:
    """The file's format: ``requested``, else from its extension."""
    if requested:
        if requested not in FORMATS:
            raise ValueError(f"unknown format {requested!r}; use one of {', '.join(FORMATS)}")
        return requested
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise ValueError(f"cannot tell the format of {path.name} from its extension; "
                         f"use --format {'|'.join(FORMATS)}")
    return EXTENSIONS[suffix]


# --- aggregation --------------------------------------------------------------


def aggregate_usage(rows: Rows, *, catalog: Catalog, flush: Callable[[DayTotals], None],
                    progress: Callable[[int, int], None] | None = None) -> int:
    """Validate every row, summing quantities per daily key and handing
    the totals to ``flush`` (which must consume them before it returns).
    Raises ImportRejected, after reading every row, when any row is bad;
    ``flush`` is not called again after a bad row."""
    errors = ErrorList(rows.label, rows.error_cap)
    totals: DayTotals = {}
    minute_days: dict[str, dt.date] = {}  # instant without ":SS" → day
    days: dict[str, dt.date] = {}  # any other occurred_at → day
    wholes: dict[str, Decimal] = {}  # quantity text → value, whole values
    fractions: dict[str, Decimal] = {}  # … values with decimals

    def checkpoint() -> None:
        if progress is not None:
            progress(count, rows.bytes_read())
        if len(totals) >= FLUSH_KEYS:
            if not errors.total:
                flush(totals)
            totals.clear()
        for memo in (minute_days, days, wholes, fractions):
            if len(memo) >= MEMO_SIZE:
                memo.clear()

    count = 0
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
                    if row == []:  # a blank CSV line
                        count -= 1
                    else:
                        errors.add(rows.position(), row.reason if isinstance(row, RowProblem)
                                   else f"expected {len(FIELDS)} fields, got {len(row)}")
                    continue
                # The memoised fast path. A miss computes what is missing with
                # the same rules; catalog.validate reports any failure.
                if occurred_at[16:19] in _SECONDS:
                    day = minute_days.get(occurred_at[:16] + occurred_at[19:])
                else:
                    day = days.get(occurred_at)
                value = wholes.get(quantity)
                if value is None:
                    value = fractions.get(quantity)
                    if value is not None and service in WHOLE_QUANTITY_SERVICES:
                        value = None
                if day is None or value is None:
                    try:
                        if day is None:
                            day = parse_occurred_at(occurred_at)
                            if occurred_at[16:19] in _SECONDS and _MINUTE_FORM.match(occurred_at):
                                minute_days[occurred_at[:16] + occurred_at[19:]] = day
                            else:
                                days[occurred_at] = day
                        if value is None:
                            value = check_quantity(quantity, service)
                            (wholes if value == value.to_integral_value() else fractions)[quantity] = value
                    except ValueError:
                        errors.add(rows.position(), _reason(catalog, row))
                        continue
                key = (account, region, service, result, day)
                total = totals.get(key)
                if total is not None:
                    totals[key] = total + value
                    continue
                try:  # a new daily key: are its codes valid?
                    catalog.check_kind(account, region, service, result)
                except InvalidRecord:
                    errors.add(rows.position(), _reason(catalog, row))
                    continue
                totals[key] = value
        except rows.error_types as exc:  # one unreadable row; the next rows can still be read
            count += 1
            hint = " (a quote that is never closed?)" if "end of data" in str(exc) else ""
            errors.add(rows.position(), f"unreadable: {exc}{hint}")
            continue
        break
    checkpoint()
    if errors.total:
        raise errors.rejected()
    if totals:
        flush(totals)
    return count

"""The rules for one usage record (interfaces.md "Usage records";
billing-rules §1–§2) and how bad records are reported.

``Catalog.validate`` states every rule. The hot loop in ``aggregate`` only
memoises its parts (a valid code combination, the day of an
``occurred_at``, the value of a quantity text) and asks ``validate`` for the
reasons whenever a part fails, so a memoised answer is always the answer
``validate`` gives.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import NamedTuple

from accounts.models import Account
from core.money import QUANTITY_DIGITS, QUANTITY_PLACES, JsonNumber, parse_plain_decimal
from core.periods import parse_occurred_at

from ..models import CATALOG_ORDER, EMAIL_RESULTS, WHOLE_QUANTITY_SERVICES, Region

FIELDS = ("occurred_at", "account", "region", "service", "result", "quantity")
# Bad rows listed in a report; the rest are counted.
ERROR_LIST_CAP = 100
# Memo sizes: a memo is emptied when it reaches its size. Memos of values
# that rarely repeat (decimal quantities, instants with fractions) are small.
MEMO_SIZE = 200_000
SMALL_MEMO_SIZE = 20_000
# The largest quantity the Decimal(20, 6) columns hold.
MAX_QUANTITY = Decimal(10) ** (QUANTITY_DIGITS - QUANTITY_PLACES) - Decimal(10) ** -QUANTITY_PLACES
# What undecodable bytes become when a file is read with surrogateescape.
_SURROGATE = re.compile("[\udc80-\udcff]")
# A quantity of the grammar (parse_plain_decimal) that fits the column (at
# most 14 digits, 6 decimals): valid as it is for data_flow, and for every
# service when it has no point. The common case, checked in one match.
_PLAIN_QUANTITY = re.compile(r"(?:0|[1-9][0-9]{0,13})(?:\.[0-9]{1,6})?\Z")
# A decimal of the grammar's form with any number of places.
_FRACTION_FORM = re.compile(r"(?:0|[1-9][0-9]*)\.[0-9]+\Z")
# How much of a non-text JSON value a reason shows.
SHOWN_JSON = 40
# No valid field holds one; a record's fields are joined into one line.
SEPARATOR = re.compile("[,\r\n]")


class RecordError(NamedTuple):
    position: int | None  # line number (files), record index (API); None: the whole source
    reason: str


class ImportRejected(Exception):
    """Bad input: nothing was stored. ``errors`` holds the first
    ``ERROR_LIST_CAP`` bad rows in order, ``total`` counts them all."""

    def __init__(self, errors: list[RecordError], total: int, label: str = "line") -> None:
        self.errors = errors
        self.total = total
        self.label = label
        super().__init__(self.summary())

    @classmethod
    def single(cls, reason: str, position: int | None = None, label: str = "line") -> ImportRejected:
        return cls([RecordError(position, reason)], 1, label)

    def summary(self) -> str:
        return f"{self.total:,} bad {self.label}{'' if self.total == 1 else 's'}; nothing was stored"

    def report(self) -> list[str]:
        """``line N: reason`` for each listed error, then how many more."""
        lines = [f"{self.label} {e.position}: {e.reason}" if e.position is not None else e.reason
                 for e in self.errors]
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

    def merge(self, errors: list[RecordError], total: int) -> None:
        """Add another reader's errors (of later or earlier lines)."""
        self.errors = sorted(self.errors + errors, key=lambda e: e.position or 0)
        if self.cap is not None:
            self.errors = self.errors[:self.cap]
        self.total += total

    def rejected(self) -> ImportRejected:
        return ImportRejected(self.errors, self.total, self.label)


class RowProblem:
    """Stands in for a record that is not one line of six plain fields: a
    bad JSON line, a non-object, a field holding a separator. It has no
    ``partition``, so the hot loop reports it through its one slow branch,
    with ``reason``, or else the reasons of ``row``."""

    __slots__ = ("reason", "row")

    def __init__(self, reason: str = "", row=None) -> None:
        self.reason = reason
        self.row = row


class InvalidRecord(ValueError):
    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


class Kind(NamedTuple):
    """A valid combination of codes."""

    account: str
    region: str
    service: str
    result: str
    whole: bool  # quantities must be whole numbers


class Catalog:
    """The codes a record may use, read once per import. ``only``: the one
    account a tenant ingest token writes (``accounts`` holds just it);
    every other account, known or not, gets the same reason, so a tenant
    learns no other account's code."""

    def __init__(self, accounts: dict[str, int], regions: set[str], only: str | None = None) -> None:
        self.accounts = accounts  # code → id
        self.regions = regions
        self.only = only
        # "account,region,service,result" → Kind, for the combinations found valid
        self.kinds: dict[str, Kind] = {}

    @classmethod
    def load(cls, *, only: Account | None = None) -> Catalog:
        regions = set(Region.objects.values_list("code", flat=True))
        if only is not None:
            return cls({only.code: only.pk}, regions, only=only.code)
        return cls(dict(Account.objects.values_list("code", "id")), regions)

    def kind(self, account: str, region: str, service: str, result: str) -> Kind:
        """The combination's Kind; InvalidRecord with every problem."""
        text = f"{account},{region},{service},{result}"
        found = self.kinds.get(text)
        if found is not None:
            return found
        reasons = []
        if not account:
            reasons.append("account is empty")
        elif account not in self.accounts:
            reasons.append(f"account {account!r} is not {self.only!r}, the only account this token writes"
                           if self.only else f"unknown account {account!r}")
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
        if len(self.kinds) >= MEMO_SIZE:
            self.kinds.clear()
        kind = self.kinds[text] = Kind(account, region, service, result, service in WHOLE_QUANTITY_SERVICES)
        return kind

    def validate(self, occurred_at: str, account: str, region: str, service: str, result: str,
                 quantity: str) -> tuple[Kind, dt.date, Decimal]:
        """Every rule for one record: its Kind, day and quantity, or
        InvalidRecord listing all its problems."""
        fields = (occurred_at, account, region, service, result, quantity)
        separated = [name for name, value in zip(FIELDS, fields, strict=True) if SEPARATOR.search(value)]
        if separated:
            raise InvalidRecord([f"{name} holds a comma or a line break" for name in separated])
        reasons: list[str] = []
        kind = day = value = None
        try:
            kind = self.kind(account, region, service, result)
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
        return kind, day, value

    def reason(self, row) -> str:
        """Every problem of a record that failed, in one line: ``row`` is a
        RowProblem, a list of fields, or a line."""
        if isinstance(row, RowProblem):
            if row.reason:
                return row.reason
            row = row.row
        if isinstance(row, str):
            row = row.removesuffix("\n").split(",")
        if len(row) != len(FIELDS):
            return f"expected {len(FIELDS)} fields, got {len(row)}"
        if _SURROGATE.search("".join(row)):
            return "not valid UTF-8"
        try:
            self.validate(*row)
        except InvalidRecord as exc:
            return str(exc)
        raise AssertionError(f"row {row!r} failed a rule that Catalog.validate accepts")


def check_quantity(text: str, service: str) -> Decimal:
    """A quantity written plainly (``core.money.parse_plain_decimal``)
    that fits the column: digits only (``0|[1-9][0-9]*``) for every service
    item but data_flow, which may also have a point and up to 6 decimals.
    ``8000.0`` is not a whole number's form, and a text the hot loop
    memoises as whole has no point (``aggregate_lines``)."""
    whole = service in WHOLE_QUANTITY_SERVICES
    if _PLAIN_QUANTITY.match(text) and not (whole and "." in text):
        return Decimal(text)  # what parse_plain_decimal gives for it
    if whole and _FRACTION_FORM.match(text):
        raise ValueError(f"{service} quantity must be a whole number, got {text!r}")
    value = parse_plain_decimal(text, places=0 if whole else QUANTITY_PLACES, what="quantity")
    if value > MAX_QUANTITY:
        raise ValueError(f"quantity {text!r} is too large (at most {MAX_QUANTITY})")
    return value


def record_fields(record: object) -> tuple[str, ...] | RowProblem:
    """A decoded JSON record → its six fields as text. ``result`` may be
    absent or null for service items other than email; ``quantity`` may be
    a JSON number, read exactly (never as a float) and judged as written
    (JsonNumber: ``1e3`` and ``-0`` are refused as they would be in a
    string), or a string. Booleans are not quantities."""
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
        elif name == "quantity" and isinstance(value, JsonNumber):
            value = value.text
        elif name == "quantity" and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            value = str(value)  # records built in Python (seed_demo)
        elif not isinstance(value, str):
            shown = json.dumps(value, default=str, ensure_ascii=False)
            if len(shown) > SHOWN_JSON:
                shown = shown[:SHOWN_JSON] + "…"
            reasons.append(f"{name} must be a string, got {shown}")
        fields.append(value)
    if reasons:
        return RowProblem("; ".join(reasons))
    return tuple(fields)

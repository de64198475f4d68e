"""CSV export of bill lines (interfaces.md, "CSV columns").

Two readers share one format:

- the console export (one account, a period or a range): settled periods
  come from their bill lines, a period without a bill from the Pending
  estimate (``billing_estimate``: paid 0.00, balance = amount);
- the staff export (every account, settled lines only, ``account`` first).

Cells are formatted by ``line_row`` (Python). On PostgreSQL the staff export
runs the same format as one ``COPY (SELECT …) TO STDOUT`` whose column
expressions (``_PG_COLUMNS``) produce the same text server-side, so a
million lines stream at the speed of ``psql \\copy`` with constant memory;
``tests/test_export_postgres.py`` proves both paths give the same bytes.

Format: UTF-8, comma separated, ``\\n`` line ends, minimal quoting (RFC 4180
quoting; PostgreSQL's COPY also ends lines with ``\\n``), money with exactly
2 decimals, quantities as plain decimals without trailing zeros, unit
prices with the 6 decimals they are stored with. A text cell that begins
with ``= + - @``, a tab or a carriage return is prefixed with ``'`` so a
spreadsheet shows it instead of running it as a formula.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import F, Min

from accounts.models import Account
from core.money import QUANTUM, format_money, format_quantity
from core.periods import Period, PeriodError, periods_between
from usage.models import EMAIL_RESULTS, DailyUsage

from .models import Bill, BillLine
from .selectors import billing_estimate

CSV_COLUMNS: tuple[str, ...] = (
    "period", "service_item", "region", "usage_quantity", "deducted_quantity", "billable_quantity",
    "unit_price", "currency", "amount", "paid", "balance", "status",
    *EMAIL_RESULTS,  # delivered, soft_bounce, format_error, not_exist, reject, junk_mail
    "adjustment_for",
)
STAFF_CSV_COLUMNS: tuple[str, ...] = ("account", *CSV_COLUMNS)
PENDING = "Pending"
# Longest range the console export accepts (each unsettled period is an estimate).
MAX_EXPORT_PERIODS = 120

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Rows per chunk handed to the HTTP response or the output file.
_ROWS_PER_CHUNK = 1000
_ITERATOR_CHUNK = 2000

# BillLine values read by the export, in the order ``line_row`` takes them.
_LINE_FIELDS = (
    "bill__period", "service_id", "region_id", "usage_quantity", "deducted_quantity", "billable_quantity",
    "unit_price", "currency", "amount", "paid", "balance", "status", *EMAIL_RESULTS, "adjustment_for",
)


def csv_text(value: str) -> str:
    """A text cell a spreadsheet shows as text (formula injection neutralised)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def format_unit_price(value: Decimal) -> str:
    """Unit price as stored: 6 decimal places (``0.000300``, ``0.300000``)."""
    return f"{Decimal(value).quantize(QUANTUM):f}"


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


def line_row(period: str, service: str, region: str, usage_quantity: Decimal, deducted_quantity: Decimal,
             billable_quantity: Decimal, unit_price: Decimal, currency: str, amount: Decimal, paid: Decimal,
             balance: Decimal, status: str, delivered: int | None, soft_bounce: int | None,
             format_error: int | None, not_exist: int | None, reject: int | None, junk_mail: int | None,
             adjustment_for: str) -> list[str]:
    """The CSV cells of one line, in ``CSV_COLUMNS`` order."""
    return [
        csv_text(period), csv_text(service), csv_text(region),
        format_quantity(usage_quantity), format_quantity(deducted_quantity), format_quantity(billable_quantity),
        format_unit_price(unit_price), csv_text(currency),
        format_money(amount), format_money(paid), format_money(balance), csv_text(status),
        _count(delivered), _count(soft_bounce), _count(format_error), _count(not_exist), _count(reject),
        _count(junk_mail), csv_text(adjustment_for),
    ]


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[str]]) -> Iterator[str]:
    """The CSV document as text chunks of about ``_ROWS_PER_CHUNK`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    pending = 0
    for row in rows:
        writer.writerow(row)
        pending += 1
        if pending >= _ROWS_PER_CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue()


def export_periods(*, first: str, last: str | None = None, now: dt.datetime,
                   max_periods: int | None = MAX_EXPORT_PERIODS) -> list[Period]:
    """The periods from ``first`` to ``last`` (default: ``first`` alone),
    oldest first. PeriodError with a readable reason when a period is
    malformed, the range is reversed or too long, or reaches past the
    current period."""
    start = Period.parse(first)
    end = Period.parse(last) if last else start
    if end < start:
        raise PeriodError(f"the range ends ({end}) before it starts ({start})")
    current = Period.current(now)
    if end > current:
        raise PeriodError(f"{end} has not started yet; the current period is {current}")
    periods = periods_between(start, end)
    if max_periods is not None and len(periods) > max_periods:
        raise PeriodError(f"a range covers at most {max_periods} periods; {start} to {end} is {len(periods)}")
    return periods


# --- the console export: one account ---------------------------------------

def _settled_rows(*, account: Account, period: Period) -> Iterator[list[str]]:
    lines = (BillLine.objects.filter(bill__account=account, bill__period=str(period))
             .order_by("position").values_list(*_LINE_FIELDS))
    for values in lines.iterator(chunk_size=_ITERATOR_CHUNK):
        yield line_row(*values)


def _pending_rows(*, account: Account, period: Period) -> Iterator[list[str]]:
    # Lines without a price in effect are left out of an estimate (the
    # console reports them as settlement errors); they are never shown at 0.
    for draft in billing_estimate(account=account, period=period).lines:
        results = draft.results or dict.fromkeys(EMAIL_RESULTS)
        yield line_row(str(period), draft.service, draft.region, draft.usage_quantity, draft.deducted_quantity,
                       draft.billable_quantity, draft.unit_price, draft.currency, draft.amount, Decimal("0.00"),
                       draft.amount, PENDING, *(results[r] for r in EMAIL_RESULTS), draft.adjustment_for)


def account_export_rows(*, account: Account, periods: Sequence[Period]) -> Iterator[list[str]]:
    """Rows of ``account`` for ``periods`` (oldest first): settled lines, or
    the Pending estimate of a period without a bill (``billing_estimate``
    decides what its settlement would bill; late usage of a settled period
    shows once, on the adjustment lines of the settlement that will bill it)."""
    billed = set(Bill.objects.filter(account=account, period__in=[str(p) for p in periods])
                 .values_list("period", flat=True))
    # A period that ends before the first unbilled usage has nothing to
    # estimate: skipping it keeps a long range to a few queries.
    first_unbilled = (DailyUsage.objects.filter(account=account, quantity__gt=F("billed_quantity"))
                      .aggregate(day=Min("day"))["day"])
    for period in periods:
        if str(period) in billed:
            yield from _settled_rows(account=account, period=period)
        elif first_unbilled is not None and first_unbilled < period.end_day:
            yield from _pending_rows(account=account, period=period)


def account_export_csv(*, account: Account, periods: Sequence[Period]) -> Iterator[str]:
    """The console CSV of ``account`` as text chunks."""
    return csv_chunks(CSV_COLUMNS, account_export_rows(account=account, periods=periods))


# --- the staff export: every account, settled lines -------------------------

def _staff_lines(*, first: Period, last: Period):
    return (BillLine.objects.filter(bill__period__gte=str(first), bill__period__lte=str(last))
            .order_by("bill__account__code", "bill__period", "position"))


def staff_export_rows(*, first: Period, last: Period) -> Iterator[list[str]]:
    """Rows of every account's settled lines from ``first`` to ``last``,
    by account code, period and line order (server-side cursor)."""
    lines = _staff_lines(first=first, last=last).values_list("bill__account__code", *_LINE_FIELDS)
    for account_code, *values in lines.iterator(chunk_size=_ITERATOR_CHUNK):
        yield [csv_text(account_code), *line_row(*values)]


def staff_export_accounts(*, first: Period, last: Period) -> int:
    """How many accounts have a bill from ``first`` to ``last``."""
    return (Bill.objects.filter(period__gte=str(first), period__lte=str(last))
            .values("account_id").distinct().count())


@dataclass
class ExportCount:
    """Filled in by a staff export once it has streamed everything."""

    lines: int = 0


def _pg_text(expr: str) -> str:
    """SQL twin of ``csv_text``."""
    return f"CASE WHEN left({expr}, 1) IN ('=', '+', '-', '@', E'\\t', E'\\r') THEN '''' || {expr} ELSE {expr} END"


# SQL twins of ``line_row``'s cells, rendered by COPY with each type's text
# output: numeric columns have the scale of the model fields (money 2, unit
# price 6), so they print the digits format_money / format_unit_price give;
# trim_scale (PostgreSQL 13+) drops trailing zeros as format_quantity does;
# NULL is an empty unquoted cell. ``period``, ``status`` and
# ``adjustment_for`` are held to YYYY-MM / Paid / Overdrawn by CHECK
# constraints, so only the free-text codes need neutralising.
_PG_COLUMNS = (
    _pg_text("a.code"), "b.period", _pg_text("l.service_id"), _pg_text("l.region_id"),
    "trim_scale(l.usage_quantity)", "trim_scale(l.deducted_quantity)", "trim_scale(l.billable_quantity)",
    "l.unit_price", _pg_text("l.currency"), "l.amount", "l.paid", "l.balance", "l.status",
    *(f"l.{result}" for result in EMAIL_RESULTS),
    "NULLIF(l.adjustment_for, '')",
)


def staff_export_sql(*, first: Period, last: Period) -> tuple[str, list[str]]:
    """The staff export as one SELECT whose COPY output is the CSV rows."""
    line, bill, account = BillLine._meta.db_table, Bill._meta.db_table, Account._meta.db_table
    # Only constants are formatted into the statement; the periods are parameters.
    sql = (
        f"SELECT {', '.join(_PG_COLUMNS)} "  # noqa: S608
        f"FROM {line} l JOIN {bill} b ON b.id = l.bill_id JOIN {account} a ON a.id = b.account_id "
        "WHERE b.period >= %s AND b.period <= %s "
        "ORDER BY a.code, b.period, l.position"
    )
    return sql, [str(first), str(last)]


def _pg_copy_chunks(*, first: Period, last: Period, count: ExportCount) -> Iterator[bytes]:
    sql, params = staff_export_sql(first=first, last=last)
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(STAFF_CSV_COLUMNS)
    yield header.getvalue().encode()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor: COPY is not part of the DB-API
        with raw.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
            for block in copy:
                yield bytes(block)
        count.lines = raw.rowcount


def _python_chunks(*, first: Period, last: Period, count: ExportCount) -> Iterator[bytes]:
    def counted():
        for row in staff_export_rows(first=first, last=last):
            count.lines += 1
            yield row

    for chunk in csv_chunks(STAFF_CSV_COLUMNS, counted()):
        yield chunk.encode()


def staff_export_csv(*, first: Period, last: Period, count: ExportCount | None = None) -> Iterator[bytes]:
    """The staff CSV (UTF-8 bytes, in chunks) of every account's settled
    lines from ``first`` to ``last``, with constant memory. ``count.lines``
    holds the number of lines once the stream is exhausted."""
    count = count if count is not None else ExportCount()
    if connection.vendor == "postgresql":
        return _pg_copy_chunks(first=first, last=last, count=count)
    return _python_chunks(first=first, last=last, count=count)

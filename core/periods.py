"""The billing calendar: UTC+8 days and monthly periods (billing-rules §1).

This is the only module that knows the billing time zone. Instants are
stored in UTC everywhere; a UTC+8 calendar day is a plain ``date``; a
billing period is a calendar month of UTC+8 days named ``YYYY-MM``.

Period ``2026-10`` is the half-open interval
``[2026-09-30T16:00Z, 2026-10-31T16:00Z)``. Its bill time is the 1st of the
next month at 15:00 UTC+8; its statement email time the 5th at 10:00 UTC+8.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.utils.formats import date_format

BILLING_TZ = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC

BILL_TIME = dt.time(15, 0)  # on the 1st of the following month, UTC+8
STATEMENT_DAY = 5
STATEMENT_TIME = dt.time(10, 0)  # on the 5th of the following month, UTC+8

# Periods outside this range are refused as input (typos such as 0202-10).
FIRST_PERIOD_YEAR = 2000
LAST_PERIOD_YEAR = 2099

_PERIOD_RE = re.compile(r"^([0-9]{4})-([0-9]{2})$")  # ASCII digits only
_DAY_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class PeriodError(ValueError):
    """A period string that is malformed or out of range."""


@dataclass(frozen=True, order=True, slots=True)
class Period:
    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise PeriodError(f"month must be 01 to 12, got {self.month:02d}")
        if not FIRST_PERIOD_YEAR <= self.year <= LAST_PERIOD_YEAR:
            raise PeriodError(
                f"year must be {FIRST_PERIOD_YEAR} to {LAST_PERIOD_YEAR}, got {self.year}"
            )

    # --- construction -----------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> Period:
        """``"2026-10"`` → Period(2026, 10); PeriodError with a readable reason."""
        match = _PERIOD_RE.match((text or "").strip())
        if not match:
            raise PeriodError(f"{text!r} is not a period; expected YYYY-MM, e.g. 2026-10")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of_day(cls, day: dt.date) -> Period:
        return cls(day.year, day.month)

    @classmethod
    def of_instant(cls, instant: dt.datetime) -> Period:
        return cls.of_day(billing_day(instant))

    @classmethod
    def current(cls, now: dt.datetime) -> Period:
        """The open period at instant ``now``."""
        return cls.of_instant(now)

    # --- calendar ---------------------------------------------------------
    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def end_day(self) -> dt.date:
        """First day of the next period (exclusive end); for 2099-12 too,
        whose next period is out of range."""
        if self.month == 12:
            return dt.date(self.year + 1, 1, 1)
        return dt.date(self.year, self.month + 1, 1)

    @property
    def last_day(self) -> dt.date:
        return self.end_day - dt.timedelta(days=1)

    def days(self) -> list[dt.date]:
        return [self.first_day + dt.timedelta(days=i) for i in range(self.last_day.day)]

    def contains(self, day: dt.date) -> bool:
        return self.first_day <= day < self.end_day

    def next(self) -> Period:
        if self.month == 12:
            return Period(self.year + 1, 1)
        return Period(self.year, self.month + 1)

    def previous(self) -> Period:
        if self.month == 1:
            return Period(self.year - 1, 12)
        return Period(self.year, self.month - 1)

    def label(self) -> str:
        """Human label in the active language: ``October 2026``, ``2026年10月``
        (YEAR_MONTH_FORMAT, aurora_billing/formats)."""
        return date_format(self.first_day, "YEAR_MONTH_FORMAT")

    # --- instants ---------------------------------------------------------
    @property
    def start(self) -> dt.datetime:
        """Start instant (UTC)."""
        return day_start(self.first_day)

    @property
    def end(self) -> dt.datetime:
        """End instant (UTC), exclusive."""
        return day_start(self.end_day)

    @property
    def bill_time(self) -> dt.datetime:
        """When the period's bill is settled and visible (UTC)."""
        return dt.datetime.combine(self.end_day, BILL_TIME, tzinfo=BILLING_TZ).astimezone(UTC)

    @property
    def statement_time(self) -> dt.datetime:
        """When the period's statement email is due (UTC)."""
        day = self.end_day.replace(day=STATEMENT_DAY)
        return dt.datetime.combine(day, STATEMENT_TIME, tzinfo=BILLING_TZ).astimezone(UTC)

    def bill_time_label(self) -> str:
        """``2026-11-01 15:00 UTC+8``."""
        return f"{self.bill_time.astimezone(BILLING_TZ):%Y-%m-%d %H:%M} UTC+8"

    def statement_time_label(self) -> str:
        return f"{self.statement_time.astimezone(BILLING_TZ):%Y-%m-%d %H:%M} UTC+8"

    def is_ended(self, now: dt.datetime) -> bool:
        return now >= self.end

    def is_billable(self, now: dt.datetime) -> bool:
        """True once the bill time has passed (settlement may run)."""
        return now >= self.bill_time

    def is_statement_due(self, now: dt.datetime) -> bool:
        return now >= self.statement_time


def billing_day(instant: dt.datetime) -> dt.date:
    """The UTC+8 calendar day of an aware instant."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("billing_day needs an aware datetime")
    return instant.astimezone(BILLING_TZ).date()


def day_start(day: dt.date) -> dt.datetime:
    """00:00 UTC+8 of ``day`` as a UTC instant."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=BILLING_TZ).astimezone(UTC)


def parse_occurred_at(text: str) -> dt.date:
    """A usage record's ``occurred_at`` → its UTC+8 billing day.

    Accepts a plain ``YYYY-MM-DD`` (already a UTC+8 day) or an ISO 8601
    instant with an explicit offset (``Z`` or ``±HH:MM``). A naive instant
    is refused: its day would be a guess.
    """
    text = (text or "").strip()
    if not text:
        raise ValueError("occurred_at is empty")
    if _DAY_RE.match(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"occurred_at {text!r} is not a real date") from None
        _check_year(day.year, text)
        return day
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"occurred_at {text!r} is neither YYYY-MM-DD nor an ISO 8601 instant with offset"
        ) from None
    if instant.tzinfo is None:
        raise ValueError(f"occurred_at {text!r} has no UTC offset (add Z or +08:00)")
    day = billing_day(instant)
    _check_year(day.year, text)
    return day


def _check_year(year: int, text: str) -> None:
    if not FIRST_PERIOD_YEAR <= year <= LAST_PERIOD_YEAR:
        raise ValueError(f"occurred_at {text!r} is outside {FIRST_PERIOD_YEAR}-{LAST_PERIOD_YEAR}")


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 instant with an explicit offset (task arguments, ``now``
    overrides); ValueError for a naive or malformed one."""
    instant = dt.datetime.fromisoformat(text)
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return instant


def parse_day(text: str) -> dt.date:
    """A plain ``YYYY-MM-DD`` date; ValueError otherwise."""
    text = (text or "").strip()
    if not _DAY_RE.match(text):
        raise ValueError(f"{text!r} is not a date; expected YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a real date") from None


def periods_between(first: Period, last: Period) -> list[Period]:
    """Inclusive list of periods from ``first`` to ``last``."""
    out = []
    p = first
    while p <= last:
        out.append(p)
        p = p.next()
    return out

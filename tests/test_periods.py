"""The UTC+8 billing calendar (billing-rules §1), table-driven."""
import datetime as dt

import pytest

from core.periods import (
    Period,
    PeriodError,
    billing_day,
    day_start,
    parse_day,
    parse_occurred_at,
    periods_between,
)
from tests.support import utc

# period, first day, last day, number of days
CALENDAR = [
    ("2026-01", dt.date(2026, 1, 1), dt.date(2026, 1, 31), 31),
    ("2026-02", dt.date(2026, 2, 1), dt.date(2026, 2, 28), 28),
    ("2028-02", dt.date(2028, 2, 1), dt.date(2028, 2, 29), 29),  # leap year
    ("2000-02", dt.date(2000, 2, 1), dt.date(2000, 2, 29), 29),  # divisible by 400: leap
    ("2096-02", dt.date(2096, 2, 1), dt.date(2096, 2, 29), 29),
    ("2026-04", dt.date(2026, 4, 1), dt.date(2026, 4, 30), 30),
    ("2026-10", dt.date(2026, 10, 1), dt.date(2026, 10, 31), 31),
    ("2026-12", dt.date(2026, 12, 1), dt.date(2026, 12, 31), 31),
    ("2099-12", dt.date(2099, 12, 1), dt.date(2099, 12, 31), 31),  # last accepted period
]


@pytest.mark.parametrize(("name", "first", "last", "days"), CALENDAR)
def test_calendar(name, first, last, days):
    period = Period.parse(name)
    assert str(period) == name
    assert (period.first_day, period.last_day, len(period.days())) == (first, last, days)
    assert period.end_day == last + dt.timedelta(days=1)
    assert period.days()[0] == first and period.days()[-1] == last
    assert period.contains(first) and period.contains(last)
    assert not period.contains(first - dt.timedelta(days=1)) and not period.contains(period.end_day)


# period, start (UTC), end (UTC), bill time (UTC), statement time (UTC)
INSTANTS = [
    ("2026-10", utc(2026, 9, 30, 16), utc(2026, 10, 31, 16), utc(2026, 11, 1, 7), utc(2026, 11, 5, 2)),
    ("2026-12", utc(2026, 11, 30, 16), utc(2026, 12, 31, 16), utc(2027, 1, 1, 7), utc(2027, 1, 5, 2)),
    ("2027-01", utc(2026, 12, 31, 16), utc(2027, 1, 31, 16), utc(2027, 2, 1, 7), utc(2027, 2, 5, 2)),
    ("2028-02", utc(2028, 1, 31, 16), utc(2028, 2, 29, 16), utc(2028, 3, 1, 7), utc(2028, 3, 5, 2)),
    ("2099-12", utc(2099, 11, 30, 16), utc(2099, 12, 31, 16), utc(2100, 1, 1, 7), utc(2100, 1, 5, 2)),
]


@pytest.mark.parametrize(("name", "start", "end", "bill_time", "statement_time"), INSTANTS)
def test_instants(name, start, end, bill_time, statement_time):
    period = Period.parse(name)
    assert (period.start, period.end, period.bill_time, period.statement_time) == (
        start, end, bill_time, statement_time)


def test_labels():
    period = Period(2026, 10)
    assert period.bill_time_label() == "2026-11-01 15:00 UTC+8"
    assert period.statement_time_label() == "2026-11-05 10:00 UTC+8"
    assert period.label() == "October 2026"


# instant (UTC) → UTC+8 billing day: the midnight boundary is 16:00Z
DAYS = [
    (utc(2026, 9, 30, 15, 59, 59), dt.date(2026, 9, 30)),
    (utc(2026, 9, 30, 16, 0, 0), dt.date(2026, 10, 1)),
    (utc(2026, 10, 31, 15, 59, 59, 999999), dt.date(2026, 10, 31)),
    (utc(2026, 10, 31, 16), dt.date(2026, 11, 1)),
    (utc(2026, 12, 31, 16), dt.date(2027, 1, 1)),  # year end
    (utc(2028, 2, 28, 16), dt.date(2028, 2, 29)),  # leap day
    (dt.datetime(2026, 10, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))), dt.date(2026, 10, 1)),
    (dt.datetime(2026, 9, 30, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5))), dt.date(2026, 10, 1)),
]


@pytest.mark.parametrize(("instant", "day"), DAYS)
def test_billing_day(instant, day):
    assert billing_day(instant) == day
    assert Period.of_instant(instant) == Period.of_day(day)
    assert day_start(day) <= instant < day_start(day + dt.timedelta(days=1))


def test_naive_instant_refused():
    with pytest.raises(ValueError, match="aware"):
        billing_day(dt.datetime(2026, 10, 1))  # noqa: DTZ001


# occurred_at text → billing day, or the error
OCCURRED = [
    ("2026-10-05", dt.date(2026, 10, 5)),
    ("2026-09-30T16:00:00Z", dt.date(2026, 10, 1)),
    ("2026-09-30T15:59:59Z", dt.date(2026, 9, 30)),
    ("2026-10-31T23:59:59+08:00", dt.date(2026, 10, 31)),
    ("2026-11-01T00:00:00+08:00", dt.date(2026, 11, 1)),
    ("2026-12-31T16:30:00+00:00", dt.date(2027, 1, 1)),
    (" 2026-10-05 ", dt.date(2026, 10, 5)),
]


@pytest.mark.parametrize(("text", "day"), OCCURRED)
def test_parse_occurred_at(text, day):
    assert parse_occurred_at(text) == day


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"),
    ("2026-02-30", "not a real date"),
    ("2026-10-05T10:00:00", "no UTC offset"),
    ("yesterday", "neither"),
    ("1999-12-31", "outside"),
    ("٢٠٢٦-١٠-٠٥", "neither"),
])
def test_parse_occurred_at_refuses(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_occurred_at(text)


@pytest.mark.parametrize(("text", "reason"), [
    ("2026-13", "month must be 01 to 12"),
    ("2026-00", "month must be 01 to 12"),
    ("0202-10", "year must be"),
    ("2100-01", "year must be"),
    ("2026-1", "expected YYYY-MM"),
    ("2026/10", "expected YYYY-MM"),
    ("", "expected YYYY-MM"),
    ("٢٠٢٦-١٠", "expected YYYY-MM"),  # non-ASCII digits
    ("2026-10-01", "expected YYYY-MM"),
])
def test_parse_period_refuses(text, reason):
    with pytest.raises(PeriodError, match=reason):
        Period.parse(text)


def test_parse_day():
    assert parse_day("2028-02-29") == dt.date(2028, 2, 29)
    with pytest.raises(ValueError, match="not a real date"):
        parse_day("2026-02-29")
    with pytest.raises(ValueError, match="expected YYYY-MM-DD"):
        parse_day("2026-2-1")


@pytest.mark.parametrize(("name", "previous", "following"), [
    ("2026-01", "2025-12", "2026-02"),
    ("2026-12", "2026-11", "2027-01"),
    ("2026-07", "2026-06", "2026-08"),
])
def test_next_and_previous(name, previous, following):
    period = Period.parse(name)
    assert str(period.previous()) == previous and str(period.next()) == following
    assert Period.parse(previous) < period < Period.parse(following)


def test_periods_between():
    assert [str(p) for p in periods_between(Period(2026, 11), Period(2027, 2))] == [
        "2026-11", "2026-12", "2027-01", "2027-02"]
    assert periods_between(Period(2026, 11), Period(2026, 10)) == []


# now → current period, and whether 2026-10 is ended / billable / statement due
MOMENTS = [
    (utc(2026, 10, 31, 15, 59), "2026-10", False, False, False),
    (utc(2026, 10, 31, 16, 0), "2026-11", True, False, False),  # 00:00 UTC+8 on Nov 1
    (utc(2026, 11, 1, 6, 59, 59), "2026-11", True, False, False),  # 14:59:59 UTC+8
    (utc(2026, 11, 1, 7, 0), "2026-11", True, True, False),  # 15:00 UTC+8: bill time
    (utc(2026, 11, 5, 1, 59), "2026-11", True, True, False),
    (utc(2026, 11, 5, 2, 0), "2026-11", True, True, True),  # 10:00 UTC+8 on the 5th
]


@pytest.mark.parametrize(("now", "current", "ended", "billable", "statement_due"), MOMENTS)
def test_moments(now, current, ended, billable, statement_due):
    october = Period(2026, 10)
    assert str(Period.current(now)) == current
    assert (october.is_ended(now), october.is_billable(now), october.is_statement_due(now)) == (
        ended, billable, statement_due)

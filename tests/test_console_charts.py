"""The console's server-rendered daily charts (aurora_billing.console.charts)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from aurora_billing.console.charts import PLOT_BOTTOM, PLOT_TOP, compact_number, daily_charts, nice_ceiling
from core.periods import Period

NOVEMBER = Period(2026, 11)


@pytest.mark.parametrize(("value", "ceiling"), [
    ("0", "1"), ("1", "1"), ("1.2", "2"), ("2.1", "2.5"), ("2.6", "5"), ("7", "10"),
    ("43324", "50000"), ("20000", "20000"), ("0.0003", "0.0005"), ("16.476403", "20"),
])
def test_nice_ceiling(value, ceiling):
    assert nice_ceiling(Decimal(value)) == Decimal(ceiling)


@pytest.mark.parametrize(("value", "text"), [
    ("0", "0"), ("12.5", "12.5"), ("12500", "12.5k"), ("50000", "50k"), ("2500000", "2.5M"),
    ("1000000000", "1G"), ("0.25", "0.25"),
])
def test_compact_number(value, text):
    assert compact_number(Decimal(value)) == text


def test_stacked_bars_scale_to_the_busiest_day_and_days_to_come_are_shaded():
    emails = {
        dt.date(2026, 11, 2): {"delivered": 30_000, "soft_bounce": 5_000, "junk_mail": 5_000},
        dt.date(2026, 11, 3): {"delivered": 10_000},
    }
    data_flow = {dt.date(2026, 11, 2): Decimal("1.5")}
    charts = daily_charts(period=NOVEMBER, today=dt.date(2026, 11, 3), emails=emails, data_flow=data_flow)
    chart = charts.emails
    # Peak 40,000 → axis to 50,000; the plot is 198 units high.
    assert [t.label for t in chart.y_ticks] == ["0", "12.5k", "25k", "37.5k", "50k"]
    plot = PLOT_BOTTOM - PLOT_TOP
    assert [(b.css, b.height) for b in chart.bars] == [
        ("s-delivered", f"{Decimal(plot) * 30 / 50:.1f}"),
        ("s-soft_bounce", f"{Decimal(plot) * 5 / 50:.1f}"),
        ("s-junk_mail", f"{Decimal(plot) * 5 / 50:.1f}"),
        ("s-delivered", f"{Decimal(plot) * 10 / 50:.1f}"),
    ]
    # Segments stack: each starts where the one below ends.
    delivered, soft, junk = chart.bars[:3]
    assert Decimal(soft.y) + Decimal(soft.height) == Decimal(delivered.y)
    assert Decimal(junk.y) + Decimal(junk.height) == Decimal(soft.y)
    assert delivered.title == "2026-11-02 · Delivered: 30,000 emails"
    assert [label for _, label in chart.legend] == ["Delivered", "Soft Bounce", "Invalid: Junk Mail"]
    assert chart.future is not None and chart.future.title == "Days still to come"
    assert [t.label for t in chart.x_ticks] == ["1", "5", "10", "15", "20", "25", "30"]
    assert chart.summary == ("Emails per day, Nov 1–3: 50,000 emails in total; busiest day 2026-11-02 "
                             "with 40,000 emails.")
    assert charts.data_flow.summary == ("Data flow per day, Nov 1–3: 1.5 GB in total; busiest day 2026-11-02 "
                                        "with 1.5 GB.")
    # The text alternative: one row per day so far, and the total.
    assert [(d.day.day, d.delivered, d.soft_bounce, d.invalid, d.emails, d.data_flow) for d in charts.days] == [
        (1, 0, 0, 0, 0, Decimal(0)), (2, 30_000, 5_000, 5_000, 40_000, Decimal("1.5")),
        (3, 10_000, 0, 0, 10_000, Decimal(0))]
    assert (charts.total.emails, charts.total.invalid, charts.total.data_flow) == (50_000, 5_000, Decimal("1.5"))
    assert charts.has_data


def test_a_month_without_usage_says_so():
    charts = daily_charts(period=Period(2026, 9), today=dt.date(2026, 11, 3), emails={}, data_flow={})
    assert charts.emails.bars == [] and charts.emails.future is None
    assert charts.emails.summary == "Emails: none in September 2026."
    assert not charts.has_data

"""The insight page (/billing/insight/?period=YYYY-MM, issue #17): cost by
region, the 12-month trend, what invalid addresses cost, the
month-over-month explanation and the month-end forecast, with exact
amounts that agree with the bills, and a constant number of queries."""
from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine

from aurora_billing.console.insight import billing_insight, result_shares
from aurora_billing.settlement import bill_settle
from core.periods import Period
from payments.services import topup_record
from tests.support import add_pack, add_price, add_usage, utc
from tests.test_history import IN_DECEMBER, OCT_SETTLED, _queries, get, history_seed, login, text_of

pytestmark = pytest.mark.django_db

IN_NOVEMBER = utc(2026, 11, 20, 4)  # 2026-11-20 12:00 UTC+8


@pytest.fixture
def history(worked_example, settings):
    settings.PAYMENTS_SANDBOX = True
    return history_seed(worked_example)


@pytest.fixture
def invalid_october(acme):
    """sg: 13,000 emails (1,500 of them Not Exist / Format Error), 3,000
    from a pack, 3 GB; hk: 1,000 delivered. Settled: 3.52."""
    add_price("email", "sg", "0.000300")
    add_price("data_flow", "sg", "0.30")
    add_price("email", "hk", "0.000400")
    add_pack(acme, "sg", "P", 3_000, "2026-09-01", "2027-09-01")
    for result, emails in (("delivered", 10_000), ("soft_bounce", 1_000), ("format_error", 500),
                           ("not_exist", 1_000), ("reject", 300), ("junk_mail", 200)):
        add_usage(acme, "sg", "email", "2026-10-05", emails, result=result)
    add_usage(acme, "sg", "data_flow", "2026-10-05", "3")
    add_usage(acme, "hk", "email", "2026-10-06", 1_000)
    bill, _ = bill_settle(account=acme, period=Period(2026, 10), now=OCT_SETTLED)
    assert bill.total_amount == Decimal("3.52")
    return acme


# --- 5. cost by region --------------------------------------------------------

def test_cost_by_region_is_one_table_adding_up_to_the_bill(client, invalid_october):
    page = text_of(get(login(client), "/billing/insight/?period=2026-10", now=IN_NOVEMBER))
    assert "Region Email Data Flow Total HK (hk) 0.40 0.00 0.40 SG (sg) 3.00 0.12 3.12 Total 3.40 0.12 3.52" in page


# --- 4. invalid addresses -----------------------------------------------------

def test_result_shares_split_each_line_to_the_cent_by_largest_remainder(invalid_october):
    line = invalid_october.bills.get().lines.get(service_id="email", region_id="sg")
    insight = billing_insight(account=invalid_october, period=Period(2026, 10), now=IN_NOVEMBER)
    email_sg = next(x for x in insight.figures.lines if x.service == "email" and x.region == "sg")
    assert email_sg.amount == line.amount == Decimal("3.00")
    assert result_shares(email_sg) == {
        "delivered": Decimal("2.31"), "soft_bounce": Decimal("0.23"), "format_error": Decimal("0.11"),
        "not_exist": Decimal("0.23"), "reject": Decimal("0.07"), "junk_mail": Decimal("0.05"),
    }
    cost = insight.invalid
    assert (cost.invalid, cost.soft_bounce, cost.invalid_share, cost.soft_bounce_share) == (
        Decimal("0.46"), Decimal("0.23"), Decimal("13.1"), Decimal("6.5"))
    # without 1,500 Not Exist / Format Error: email 8,500 billable (2.55), and
    # 0.3 GB less free traffic (data flow 0.7 GB: 0.21); hk unchanged 0.40
    assert (cost.without_avoidable, cost.avoidable_saving) == (Decimal("3.16"), Decimal("0.36"))


def test_invalid_cost_on_the_page(client, invalid_october):
    page = text_of(get(login(client), "/billing/insight/?period=2026-10", now=IN_NOVEMBER))
    assert ("Invalid results cost 0.46 (13.1% of the bill); Soft Bounce 0.23 (6.5%). Without the Not Exist and "
            "Format Error sends the month would have cost 3.16 (0.36 less).") in page
    assert "SG 13,000 0.11 0.23 0.07 0.05 0.46 0.23" in page
    assert "HK 1,000 0.00 0.00 0.00 0.00 0.00 0.00" in page


# --- 2. trend ------------------------------------------------------------------

def test_trend_shows_twelve_months_settled_and_the_estimate(client, history):
    response = get(login(client), "/billing/insight/?period=2026-11")
    page = text_of(response)
    assert "2026-10 5.40 1.32 6.72 0.00 0.00" in page
    assert "2026-11 15.00 0.00 15.00" in page
    assert "2026-12 (estimate) 3.00 0.00 3.00" in page
    assert "2026-01 0.00 0.00 0.00" in page and "2025-12" not in page.split("Cost trend")[1].split("What")[0]
    html = response.content.decode()
    assert html.count('<rect class="bar-') == 4  # Oct (2 items), Nov, Dec
    assert html.count("estimate\" x=") == 1


# --- 3. month over month --------------------------------------------------------

def test_month_over_month_parts_add_up_to_the_difference(client, history):
    insight = billing_insight(account=history, period=Period(2026, 11), now=IN_DECEMBER)
    mom = insight.month_over_month
    assert mom.difference == Decimal("8.28")  # 15.00 − 6.72
    assert [(c.kind, c.service, c.amount) for c in mom.causes] == [
        ("pack_coverage", "email", Decimal("15.00")),
        ("volume", "email", Decimal("-5.40")),
        ("new_items", "data_flow", Decimal("-1.32")),
    ]
    assert sum(c.amount for c in mom.causes) == mom.difference
    page = text_of(get(login(client), "/billing/insight/?period=2026-11"))
    page = page.replace("8.28 :", "8.28:")  # <strong>+8.28</strong>: text_of puts a space for each tag
    assert ("+8.28: pack coverage in sg: -60,000 emails from packs; your pack A expired on 10-16; your pack B is "
            "used up (+15.00); -28,000 delivered emails in sg (-5.40); Data Flow no longer used (sg) (-1.32)") in page


def test_month_over_month_price_and_result_mix(acme):
    add_price("email", "sg", "0.000300")
    add_price("email", "sg", "0.000350", effective_from="2026-11-01")
    add_usage(acme, "sg", "email", "2026-10-05", 10_000)
    add_usage(acme, "sg", "email", "2026-11-05", 12_000)
    add_usage(acme, "sg", "email", "2026-11-05", 3_001, result="not_exist")
    add_usage(acme, "hk", "email", "2026-11-05", 1_000)  # a new region
    add_price("email", "hk", "0.000400")
    bill_settle(account=acme, period=Period(2026, 10), now=OCT_SETTLED)
    mom = billing_insight(account=acme, period=Period(2026, 11), now=IN_NOVEMBER).month_over_month
    # 3.00 → 15,001 × 0.00035 = 5.25035 → 5.25, and hk 0.40
    assert mom.difference == Decimal("2.65")
    assert {(c.kind, c.region): c.amount for c in mom.causes} == {
        ("volume", "sg"): Decimal("0.60"), ("result_mix", "sg"): Decimal("0.90"), ("price", "sg"): Decimal("0.75"),
        ("region_mix", "hk"): Decimal("0.40"),
    }


def test_month_over_month_names_the_five_largest_and_sums_the_rest(client, acme):
    """Seven regions change and one delivery-result mix: the sentence names
    the five largest changes and gives the count and sum of the other three;
    the table by cause and the list of every change add up to the difference too."""
    regions = ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]
    for i, region in enumerate(regions, 1):
        add_price("email", region, "0.000100")
        add_usage(acme, region, "email", "2026-10-05", 10_000)
        add_usage(acme, region, "email", "2026-11-05", 10_000 + 1_000 * i)  # +0.10 … +0.70
    add_usage(acme, "r1", "email", "2026-11-05", 2_000, result="reject")  # +0.20 delivery-result mix
    bill_settle(account=acme, period=Period(2026, 10), now=OCT_SETTLED)
    mom = billing_insight(account=acme, period=Period(2026, 11), now=IN_NOVEMBER).month_over_month
    assert mom.difference == Decimal("3.00")  # 7.00 → 10.00
    assert [c.amount for c in mom.headline] == [Decimal("0.70"), Decimal("0.60"), Decimal("0.50"),
                                                Decimal("0.40"), Decimal("0.30")]
    assert len(mom.others) == 3 and mom.others_amount == Decimal("0.50")  # r2 0.20, r1 mix 0.20, r1 0.10
    assert mom.by_kind() == [("volume", 7, Decimal("2.80")), ("result_mix", 1, Decimal("0.20"))]
    assert sum(amount for _, _, amount in mom.by_kind()) == mom.difference
    page = text_of(get(login(client), "/billing/insight/", now=IN_NOVEMBER)).replace("3.00 :", "3.00:")
    assert ("+3.00: +7,000 delivered emails in r7 (+0.70); +6,000 delivered emails in r6 (+0.60); +5,000 delivered "
            "emails in r5 (+0.50); +4,000 delivered emails in r4 (+0.40); +3,000 delivered emails in r3 (+0.30); "
            "3 smaller changes (+0.50)") in page
    assert "Cause Lines changed Change Volume 7 +2.80 Delivery-result mix 1 +0.20 Total +3.00" in page
    assert "Every change (8)" in page
    assert "Delivery-result mix Email r1 +2,000 +0.20" in page


def test_month_over_month_says_the_unit_of_other_items(client, acme):
    add_price("data_flow", "sg", "0.30")
    add_price("data_masking", "sg", "0.001")
    add_price("dedicated_ip", "sg", "25.00")
    add_usage(acme, "sg", "data_flow", "2026-10-05", "1.5")
    add_usage(acme, "sg", "data_flow", "2026-11-05", "4.123456")
    add_usage(acme, "sg", "data_masking", "2026-10-05", 100)
    add_usage(acme, "sg", "data_masking", "2026-11-05", 1_100)
    add_usage(acme, "sg", "dedicated_ip", "2026-10-01", 1)
    add_usage(acme, "sg", "dedicated_ip", "2026-11-01", 2)
    bill_settle(account=acme, period=Period(2026, 10), now=OCT_SETTLED)
    page = text_of(get(login(client), "/billing/insight/", now=IN_NOVEMBER))
    assert "+2.62 GB of Data Flow in sg (+0.79)" in page  # 2.623456 GB: 0.45 → 1.24
    assert "+1,000 requests of Data Masking in sg (+1.00)" in page
    assert "+1 IP-month of Dedicated IP in sg (+25.00)" in page


@pytest.mark.parametrize(("value", "places", "text"), [
    ("38000", "", "+38,000"), ("-504841", "", "-504,841"), ("-0.5", "", "-0.5"), ("0", "", "0"),
    ("-196.32935", 2, "-196.33"), ("0.004", 2, "0"), ("2", 2, "+2"),
])
def test_change_is_signed_and_rounded_for_text(value, places, text):
    from invoices.templatetags.billing import change

    assert change(value, places) == text


@pytest.mark.parametrize(("value", "text"), [("41.2", "+41.20"), ("-3", "-3.00"), ("0", "0.00"), ("0.004", "0.00"),
                                             ("-0.004", "0.00")])
def test_money_change_is_signed(value, text):
    from invoices.templatetags.billing import money_change

    assert money_change(value) == text


def test_quantity_keeps_the_sign_of_a_fraction():
    from invoices.templatetags.billing import quantity

    assert (quantity("-0.5"), quantity("-1234.5"), quantity("20.500000")) == ("-0.5", "-1,234.5", "20.5")
    assert (quantity("-0"), quantity("-0.000000")) == ("0", "0")


def test_estimate_from_shared_inputs_is_the_estimate(acme):
    """Inputs read once up to a later month's end answer an earlier period's
    estimate exactly as a fresh read; a later period than they cover is refused."""
    from invoices.selectors import billing_estimate, unbilled_inputs

    add_price("email", "sg", "0.000300")
    add_pack(acme, "sg", "pk", 5_000, "2026-10-01", "2027-10-01")
    add_usage(acme, "sg", "email", "2026-10-05", 4_000)
    add_usage(acme, "sg", "email", "2026-11-05", 12_000)
    inputs = unbilled_inputs(account=acme, before=Period(2026, 11).end_day)
    for period in (Period(2026, 10), Period(2026, 11)):
        fresh = billing_estimate(account=acme, period=period)
        shared = billing_estimate(account=acme, period=period, inputs=inputs)
        assert [(x.region, x.deducted_quantity, x.amount) for x in shared.lines] == \
            [(x.region, x.deducted_quantity, x.amount) for x in fresh.lines]
    assert billing_estimate(account=acme, period=Period(2026, 11), inputs=inputs).total == Decimal("3.30")
    assert inputs.packs[0].remaining == 5_000  # the dry runs drew down copies
    with pytest.raises(ValueError, match="cannot answer"):
        billing_estimate(account=acme, period=Period(2026, 12), inputs=inputs)


def test_inputs_of_one_account_never_answer_for_another(acme, make_account):
    from invoices.selectors import billing_estimate, billing_forecast, unbilled_inputs

    other = make_account(code="other", name="Other Ltd", users=())
    inputs = unbilled_inputs(account=acme, before=Period(2026, 11).end_day)
    with pytest.raises(ValueError, match="given for account"):
        billing_estimate(account=other, period=Period(2026, 11), inputs=inputs)
    with pytest.raises(ValueError, match="given for account"):
        billing_forecast(account=other, period=Period(2026, 11), today=Period(2026, 11).first_day.replace(day=20),
                         inputs=inputs)


# --- 6. forecast ----------------------------------------------------------------

def test_forecast_projects_the_pace_through_packs_and_funds(client, acme):
    add_price("email", "sg", "0.000300")
    add_pack(acme, "sg", "pk", 25_000, "2026-11-01", "2028-11-01")
    topup_record(account=acme, amount=Decimal("0.50"), reference="t", at=utc(2026, 11, 1))
    add_usage(acme, "sg", "email", "2026-11-05", 19_000)  # 19 complete days: 1,000 a day
    add_usage(acme, "sg", "email", "2026-11-20", 500)  # today, partial: not the pace
    insight = billing_insight(account=acme, period=Period(2026, 11), now=IN_NOVEMBER)
    f = insight.forecast
    assert (f.forecast.days_elapsed, f.forecast.days_left) == (19, 11)
    # 11-20 … 11-25 drain the pack's last 6,000; 11-26 … 11-30: 5,000 × 0.0003
    assert f.forecast.total == Decimal("1.50") and f.overdraft == Decimal("1.00")
    assert str(f.forecast.packs_out["sg"]) == "2026-11-25"
    page = text_of(get(login(client), "/billing/insight/", now=IN_NOVEMBER))
    assert ("At this pace packs in sg run out on 11-25; projected amount 1.50; projected overdraft 1.00 after "
            "funds.") in page
    assert "the usage of the 19 complete days so far" in page


def test_no_forecast_for_a_settled_month(client, history):
    assert "Month-end forecast" not in text_of(get(login(client), "/billing/insight/?period=2026-11"))


# --- the page -------------------------------------------------------------------

@pytest.mark.parametrize("query", ["?period=2026-13", "?period=2031-01", "?period=x"])
def test_bad_period_is_a_400(client, history, query):
    assert get(login(client), f"/billing/insight/{query}").status_code == 400


def test_insight_reads_a_constant_number_of_queries(client, history):
    login(client)
    before = [_queries(client, f"/billing/insight/{q}") for q in ("", "?period=2026-11")]
    add_price("email", "hk", "0.000400")
    add_price("data_flow", "hk", "0.30")
    add_pack(history, "hk", "hk-1", 1_000, "2026-11-01", "2027-11-01")
    for day in ("2026-12-03", "2026-12-04", "2026-12-05"):
        add_usage(history, "hk", "email", day, 5_000, result="not_exist")
        add_usage(history, "hk", "data_flow", day, "3")
    for i in range(5):
        topup_record(account=history, amount=Decimal("1.00"), reference=f"x{i}", at=utc(2026, 12, 2))
    with time_machine.travel(utc(2027, 1, 1, 7), tick=False):
        bill_settle(account=history, period=Period(2026, 12), now=utc(2027, 1, 1, 7))
    add_usage(history, "sg", "email", "2027-01-03", 7_000)
    after = [_queries(client, f"/billing/insight/{q}", now=utc(2027, 1, 20)) for q in ("", "?period=2026-12")]
    assert before == after


def test_service_items_are_named_in_the_reader_language(invalid_october):
    """The columns of cost by region and the trend name the catalog's items
    in the active language, as the summary does (docs/i18n.md)."""
    from django.utils import translation

    with translation.override("zh-hans"):
        insight = billing_insight(account=invalid_october, period=Period(2026, 10), now=IN_NOVEMBER)
        assert [name for _, name in insight.region_cost.services] == ["邮件推送", "数据流量"]
        assert [name for _, name in insight.trend.services] == ["邮件推送", "数据流量"]

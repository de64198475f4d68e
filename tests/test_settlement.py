"""Settlement by billing-rules §3–§5: prices, packs, allowance, funds,
statuses, late usage, catch-up, failures and reruns."""
from decimal import Decimal

import pytest
from django.db.models import F

from aurora_billing.settlement import (
    PeriodNotDue,
    SettlementError,
    accounts_due,
    accounts_settle,
    bill_settle,
)
from core.models import AuditEvent
from core.periods import Period
from invoices.models import Bill, BillLine, PackDeduction
from invoices.selectors import billing_estimate
from payments.models import LedgerEntry
from payments.selectors import funds_balances
from payments.services import topup_record
from tests.support import add_pack, add_price, add_usage, utc
from usage.models import DailyUsage

pytestmark = pytest.mark.django_db

OCT, NOV = Period(2026, 10), Period(2026, 11)
AFTER_OCT = OCT.bill_time  # 2026-11-01 15:00 UTC+8
AFTER_NOV = NOV.bill_time


def lines_of(bill):
    return [line_tuple(line) for line in bill.lines.order_by("position")]


def line_tuple(line):
    """(service, region, adjustment_for, usage, deducted, billable, unit price, amount) of a BillLine or draft."""
    return (getattr(line, "service_id", None) or line.service, getattr(line, "region_id", None) or line.region,
            line.adjustment_for, line.usage_quantity, line.deducted_quantity, line.billable_quantity,
            line.unit_price, line.amount)


def money(line):
    return (line.amount, line.paid, line.balance, line.status)


def topup(account, amount, reference="t1"):
    topup_record(account=account, amount=Decimal(amount), reference=reference, at=utc(2026, 9, 1))


def snapshot():
    """Everything settlement writes, to prove a rerun changes nothing."""
    return (
        list(Bill.objects.order_by("pk").values_list("pk", "account_id", "period", "total_amount", "funds_applied")),
        list(BillLine.objects.order_by("pk").values_list("pk", "amount", "paid", "balance", "status")),
        list(PackDeduction.objects.order_by("pk").values_list("pk", "pack_id", "day", "quantity")),
        list(LedgerEntry.objects.order_by("pk").values_list("pk", "kind", "amount")),
        list(DailyUsage.objects.order_by("pk").values_list("pk", "quantity", "billed_quantity")),
    )


def test_funds_go_in_catalog_order_then_region_code(acme):
    add_price("email", "hk", "0.001")
    add_price("email", "sg", "0.001")
    add_price("data_flow", "sg", "0.50")
    add_price("dedicated_ip", "hk", "10.00")
    add_usage(acme, "sg", "email", "2026-10-03", 2000)
    add_usage(acme, "hk", "email", "2026-10-03", 1000)
    add_usage(acme, "hk", "dedicated_ip", "2026-10-01", 1)
    add_usage(acme, "sg", "data_flow", "2026-10-09", "1.0")
    topup(acme, "3.10")
    bill, created = bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    assert created
    lines = list(bill.lines.order_by("position"))
    assert [(x.service_id, x.region_id) for x in lines] == [
        ("email", "hk"), ("email", "sg"), ("data_flow", "sg"), ("dedicated_ip", "hk")]
    assert [money(x) for x in lines] == [
        (Decimal("1.00"), Decimal("1.00"), Decimal("0.00"), "Paid"),
        (Decimal("2.00"), Decimal("2.00"), Decimal("0.00"), "Paid"),
        (Decimal("0.30"), Decimal("0.10"), Decimal("0.20"), "Overdrawn"),  # 1.0 GB − 0.4 free = 0.6 GB
        (Decimal("10.00"), Decimal("0.00"), Decimal("10.00"), "Overdrawn"),
    ]
    assert (bill.total_amount, bill.funds_applied) == (Decimal("13.30"), Decimal("3.10"))
    assert funds_balances(account_ids=[acme.pk])[acme.pk] == Decimal("0.00")
    entries = LedgerEntry.objects.filter(kind="settlement").order_by("pk")
    assert [(e.line_id, e.amount) for e in entries] == [
        (lines[0].pk, Decimal("-1.00")), (lines[1].pk, Decimal("-2.00")), (lines[2].pk, Decimal("-0.10"))]
    event = AuditEvent.objects.get(action="bill.settled")
    assert (event.account_id, event.object_id, event.actor_label) == (acme.pk, str(bill.pk), "system")
    assert event.data == {"period": "2026-10", "total_amount": "13.30", "funds_applied": "3.10", "currency": "USD",
                          "lines": 4}
    assert entries[0].memo == "2026-10 email/hk" and entries[0].at == AFTER_OCT


def test_email_results_counted_on_the_email_line(acme):
    add_price("email", "sg", "0.0005")
    for result, quantity in [("delivered", 700), ("soft_bounce", 100), ("format_error", 50), ("not_exist", 40),
                             ("reject", 30), ("junk_mail", 80)]:
        add_usage(acme, "sg", "email", "2026-10-07", quantity, result=result)
    bill, _ = bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    line = bill.lines.get()
    assert (line.usage_quantity, line.billable_quantity, line.amount) == (
        Decimal("1000"), Decimal("1000"), Decimal("0.50"))
    assert (line.delivered, line.soft_bounce, line.format_error, line.not_exist, line.reject, line.junk_mail) == (
        700, 100, 50, 40, 30, 80)


def test_packs_day_by_day_in_order_and_forfeited_at_expiry(acme):
    add_price("email", "sg", "0.01")
    add_pack(acme, "sg", "b", 100, "2026-10-01", "2026-10-20")
    add_pack(acme, "sg", "a", 100, "2026-10-01", "2026-10-20")  # same dates: reference order, a before b
    add_pack(acme, "sg", "c", 50, "2026-09-15", "2026-10-20")  # same until, earlier from: before a
    add_pack(acme, "sg", "z", 30, "2026-10-01", "2026-10-10")  # expires first: first
    add_pack(acme, "sg", "f", 1000, "2026-10-26", "2026-12-01")  # not valid yet on 10-25
    add_pack(acme, "hk", "other-region", 1000, "2026-01-01", "2028-01-01")
    add_usage(acme, "sg", "email", "2026-10-05", 40)
    add_usage(acme, "sg", "email", "2026-10-12", 200)
    add_usage(acme, "sg", "email", "2026-10-25", 100)
    bill, _ = bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    line = bill.lines.get()
    assert (line.usage_quantity, line.deducted_quantity, line.billable_quantity, line.amount) == (
        Decimal("340"), Decimal("240"), Decimal("100"), Decimal("1.00"))
    taken = [(d.pack.reference, d.day.isoformat(), d.quantity) for d in PackDeduction.objects.order_by("pk")]
    assert taken == [("z", "2026-10-05", 30), ("c", "2026-10-05", 10),
                     ("c", "2026-10-12", 40), ("a", "2026-10-12", 100), ("b", "2026-10-12", 60)]
    # b's 40 left are forfeited at expiry; f carries forward into November.
    add_usage(acme, "sg", "email", "2026-11-10", 500)
    nov, _ = bill_settle(account=acme, period=NOV, now=AFTER_NOV)
    assert lines_of(nov) == [("email", "sg", "", Decimal("500"), Decimal("500"), Decimal("0"),
                              Decimal("0.010000"), Decimal("0.00"))]
    assert nov.lines.get().status == "Paid"
    assert PackDeduction.objects.filter(pack__reference="f").get().quantity == 500


def test_data_flow_allowance_per_region(acme):
    add_price("email", "sg", "0")
    add_price("email", "hk", "0")
    add_price("data_flow", "sg", "0.30")
    add_price("data_flow", "hk", "0.30")
    add_usage(acme, "sg", "email", "2026-10-02", 10_000)  # 2 GB free in sg only
    add_usage(acme, "sg", "data_flow", "2026-10-02", "1.5")
    add_usage(acme, "hk", "data_flow", "2026-10-02", "1.5")
    bill, _ = bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    df = {x.region_id: (x.deducted_quantity, x.billable_quantity, x.amount)
          for x in bill.lines.filter(service_id="data_flow")}
    assert df == {"sg": (Decimal("1.5"), Decimal("0"), Decimal("0.00")),
                  "hk": (Decimal("0"), Decimal("1.5"), Decimal("0.45"))}


def test_price_in_effect_on_the_first_day(acme):
    add_price("email", "sg", "0.001", effective_from="2026-01-01")
    add_price("email", "sg", "0.002", effective_from="2026-10-02")  # mid-October: November's price
    add_usage(acme, "sg", "email", "2026-10-20", 1000)
    add_usage(acme, "sg", "email", "2026-11-20", 1000)
    oct_bill, _ = bill_settle(account=acme, period=OCT, now=AFTER_NOV)
    nov_bill, _ = bill_settle(account=acme, period=NOV, now=AFTER_NOV)
    assert oct_bill.lines.get().unit_price == Decimal("0.001") and oct_bill.total_amount == Decimal("1.00")
    assert nov_bill.lines.get().unit_price == Decimal("0.002") and nov_bill.total_amount == Decimal("2.00")


def test_no_price_is_reported_and_the_others_settle(make_account):
    good, bad = make_account(code="good"), make_account(code="bad", users=())
    add_price("email", "sg", "0.001")
    add_price("data_flow", "hk", "0.30", effective_from="2026-10-15")  # not in effect on 10-01
    add_usage(good, "sg", "email", "2026-10-05", 1000)
    add_usage(bad, "sg", "email", "2026-10-05", 1000)
    add_usage(bad, "hk", "data_flow", "2026-10-20", "3")
    report = accounts_settle(account_ids=[good.pk, bad.pk], now=AFTER_OCT)
    assert report.settled == [("good", "2026-10")]
    assert report.errors == ["bad 2026-10: no USD price for data_flow in region hk in effect on 2026-10-01"]
    assert not Bill.objects.filter(account=bad).exists()
    assert not DailyUsage.objects.filter(account=bad, billed_quantity__gt=0).exists()
    with pytest.raises(SettlementError, match="no USD price for data_flow"):
        bill_settle(account=bad, period=OCT, now=AFTER_OCT)
    # Once the price exists, the account settles; the others are untouched.
    add_price("data_flow", "hk", "0.30", effective_from="2026-10-01")
    assert accounts_settle(account_ids=[good.pk, bad.pk], now=AFTER_OCT).settled == [("bad", "2026-10")]


def test_a_zero_price_is_a_price(acme):
    add_price("data_masking", "sg", "0")
    add_usage(acme, "sg", "data_masking", "2026-10-05", 5)
    bill, _ = bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    assert money(bill.lines.get()) == (Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), "Paid")


def test_late_usage_is_billed_once_on_adjustment_lines(acme):
    add_price("email", "sg", "0.001", effective_from="2026-01-01")
    add_price("email", "sg", "0.002", effective_from="2026-11-01")
    add_price("data_flow", "sg", "0.50")
    add_usage(acme, "sg", "email", "2026-10-05", 1000)
    add_usage(acme, "sg", "data_flow", "2026-10-05", "0.1")
    oct_bill, _ = bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    assert lines_of(oct_bill) == [
        ("email", "sg", "", Decimal("1000"), Decimal("0"), Decimal("1000"), Decimal("0.001"), Decimal("1.00")),
        ("data_flow", "sg", "", Decimal("0.1"), Decimal("0.1"), Decimal("0"), Decimal("0.50"), Decimal("0.00")),
    ]
    # Late usage for October, after its bill; and November's own usage.
    add_usage(acme, "sg", "email", "2026-10-20", 500)
    add_usage(acme, "sg", "email", "2026-10-05", 100)  # added to an already billed row
    add_usage(acme, "sg", "data_flow", "2026-10-20", "0.5")
    add_usage(acme, "sg", "email", "2026-11-03", 100)
    topup(acme, "0.30")
    estimate = billing_estimate(account=acme, period=NOV)
    nov_bill, created = bill_settle(account=acme, period=NOV, now=AFTER_NOV)
    assert created
    # October's price, October's allowance: 0.0002 × 1600 = 0.32 GB in all,
    # 0.1 of it used on the October bill; 0.6 − 0.32 = 0.28 GB billable.
    assert lines_of(nov_bill) == [
        ("email", "sg", "", Decimal("100"), Decimal("0"), Decimal("100"), Decimal("0.002"), Decimal("0.20")),
        ("email", "sg", "2026-10", Decimal("600"), Decimal("0"), Decimal("600"), Decimal("0.001"), Decimal("0.60")),
        ("data_flow", "sg", "2026-10", Decimal("0.5"), Decimal("0.22"), Decimal("0.28"), Decimal("0.50"),
         Decimal("0.14")),
    ]
    assert [line_tuple(x) for x in estimate.lines] == lines_of(nov_bill)  # the estimate was the bill
    assert [money(x) for x in nov_bill.lines.order_by("position")] == [  # funds: adjustments last
        (Decimal("0.20"), Decimal("0.20"), Decimal("0.00"), "Paid"),
        (Decimal("0.60"), Decimal("0.10"), Decimal("0.50"), "Overdrawn"),
        (Decimal("0.14"), Decimal("0.00"), Decimal("0.14"), "Overdrawn"),
    ]
    assert not DailyUsage.objects.exclude(billed_quantity=F("quantity")).exists()
    before = snapshot()
    assert accounts_settle(account_ids=[acme.pk], now=utc(2027, 3, 1)).settled == []
    assert snapshot() == before


def test_late_usage_alone_gets_an_adjustment_bill_in_the_next_settlement_only(acme):
    add_price("email", "sg", "0.001")
    add_usage(acme, "sg", "email", "2026-08-05", 1000)
    add_usage(acme, "sg", "email", "2026-10-05", 1000)
    assert accounts_settle(account_ids=[acme.pk], now=AFTER_OCT).settled == [("acme", "2026-08"), ("acme", "2026-10")]
    add_usage(acme, "sg", "email", "2026-08-06", 300)  # late usage of August
    # Not before November's bill time: nothing is due, and September (older
    # than the October bill) never carries it.
    assert accounts_due(now=utc(2026, 11, 20)) == []
    assert accounts_settle(account_ids=[acme.pk], now=utc(2026, 11, 20)).settled == []
    assert bill_settle(account=acme, period=Period(2026, 9), now=AFTER_NOV) == (None, False)
    assert accounts_due(now=AFTER_NOV) == [acme.pk]
    assert accounts_settle(account_ids=[acme.pk], now=AFTER_NOV).settled == [("acme", "2026-11")]
    nov_bill = Bill.objects.get(account=acme, period="2026-11")
    assert lines_of(nov_bill) == [("email", "sg", "2026-08", Decimal("300"), Decimal("0"), Decimal("300"),
                                   Decimal("0.001"), Decimal("0.30"))]
    assert accounts_due(now=AFTER_NOV) == []
    assert not Bill.objects.filter(period="2026-09").exists()


def test_catch_up_settles_every_due_period_oldest_first(acme):
    add_price("email", "sg", "0.01")
    add_pack(acme, "sg", "p", 1500, "2026-08-01", "2026-12-31")
    for day in ("2026-08-10", "2026-09-10", "2026-10-10", "2026-11-10"):
        add_usage(acme, "sg", "email", day, 1000)
    estimate = billing_estimate(account=acme, period=OCT)  # simulates Aug and Sep first
    with pytest.raises(SettlementError, match="settle 2026-08 first"):
        bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    report = accounts_settle(account_ids=[acme.pk], now=AFTER_OCT)  # November is not due
    assert report.settled == [("acme", "2026-08"), ("acme", "2026-09"), ("acme", "2026-10")]
    billed = {b.period: b.lines.get() for b in Bill.objects.filter(account=acme)}
    assert {p: (x.deducted_quantity, x.amount) for p, x in billed.items()} == {
        "2026-08": (Decimal("1000"), Decimal("0.00")),
        "2026-09": (Decimal("500"), Decimal("5.00")),
        "2026-10": (Decimal("0"), Decimal("10.00")),
    }
    assert [line_tuple(x) for x in estimate.lines] == [line_tuple(billed["2026-10"])]
    assert DailyUsage.objects.get(day="2026-11-10").billed_quantity == 0


def test_usage_of_an_old_period_without_bill_gets_its_own_bill(acme):
    add_price("email", "sg", "0.01")
    add_usage(acme, "sg", "email", "2026-10-10", 100)
    bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    add_usage(acme, "sg", "email", "2026-08-10", 100)  # August had no usage, then some arrives
    assert accounts_settle(account_ids=[acme.pk], now=utc(2026, 11, 3)).settled == [("acme", "2026-08")]
    assert lines_of(Bill.objects.get(account=acme, period="2026-08"))[0][2] == ""


def test_before_bill_time_is_refused(acme):
    add_price("email", "sg", "0.01")
    add_usage(acme, "sg", "email", "2026-10-10", 100)
    with pytest.raises(PeriodNotDue, match="2026-11-01 15:00 UTC"):
        bill_settle(account=acme, period=OCT, now=utc(2026, 11, 1, 6, 59, 59))
    with pytest.raises(PeriodNotDue):
        accounts_settle(account_ids=[acme.pk], now=utc(2026, 11, 1, 6, 59, 59), period=OCT)
    assert accounts_due(now=utc(2026, 11, 1, 6, 59, 59)) == []
    assert accounts_due(now=AFTER_OCT) == [acme.pk]
    assert not Bill.objects.exists()


def test_no_usage_no_bill(acme):
    assert bill_settle(account=acme, period=OCT, now=AFTER_OCT) == (None, False)
    report = accounts_settle(account_ids=[acme.pk], now=AFTER_OCT, period=OCT)
    assert (report.settled, report.empty) == ([], [("acme", "2026-10")])
    assert not Bill.objects.exists()


def test_bill_keeps_the_billing_information_of_its_time(acme):
    from accounts.models import BillingInfo

    BillingInfo.objects.create(account=acme, contact_name="李雷", company_name="极光科技有限公司",
                               website="https://acme.example", company_address="上海市",
                               detailed_address="浦东新区 1 号")
    add_price("email", "sg", "0.01")
    add_usage(acme, "sg", "email", "2026-10-10", 100)
    bill, _ = bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    assert bill.billing_info_snapshot["company_name"] == "极光科技有限公司"
    assert bill.settled_at == AFTER_OCT


def test_a_failure_leaves_nothing_for_that_account_and_a_rerun_settles_it(make_account, monkeypatch):
    import aurora_billing.settlement as settlement

    accounts = [make_account(code=code, users=()) for code in ("a-one", "b-two", "c-three")]
    add_price("email", "sg", "0.01")
    for account in accounts:
        add_pack(account, "sg", f"pack-{account.code}", 50, "2026-10-01", "2027-10-01")
        add_usage(account, "sg", "email", "2026-10-10", 100)
        topup(account, "0.20", reference=f"t-{account.code}")
    real_write = settlement.bills_write

    def failing_write(*, drafts, funds_applied, now):
        written = real_write(drafts=drafts, funds_applied=funds_applied, now=now)  # rows written …
        if any(d.account.code == "b-two" for d in drafts):
            raise RuntimeError("disk full")  # … then the failure: all of it must roll back
        return written

    monkeypatch.setattr(settlement, "bills_write", failing_write)
    report = accounts_settle(account_ids=[a.pk for a in accounts], now=AFTER_OCT)
    assert report.settled == [("a-one", "2026-10"), ("c-three", "2026-10")]
    assert report.errors == ["b-two due periods: RuntimeError: disk full"]
    b = accounts[1]
    assert not Bill.objects.filter(account=b).exists()
    assert not BillLine.objects.filter(bill__account=b).exists()
    assert not PackDeduction.objects.filter(pack__account=b).exists()
    assert not LedgerEntry.objects.filter(account=b, kind="settlement").exists()
    assert DailyUsage.objects.get(account=b).billed_quantity == 0
    assert funds_balances(account_ids=[b.pk])[b.pk] == Decimal("0.20")

    monkeypatch.setattr(settlement, "bills_write", real_write)
    before = {a.code: snapshot_of(a) for a in (accounts[0], accounts[2])}
    report = accounts_settle(account_ids=[a.pk for a in accounts], now=AFTER_OCT)
    assert report.settled == [("b-two", "2026-10")]
    assert {a.code: snapshot_of(a) for a in (accounts[0], accounts[2])} == before
    assert money(Bill.objects.get(account=b).lines.get()) == (
        Decimal("0.50"), Decimal("0.20"), Decimal("0.30"), "Overdrawn")


def snapshot_of(account):
    return (list(Bill.objects.filter(account=account).values_list("pk", "total_amount")),
            list(LedgerEntry.objects.filter(account=account).values_list("pk", "amount")))


def test_an_interrupted_run_is_finished_by_the_next(make_account, monkeypatch):
    """A crash (here an interrupt, which nothing catches) between batches:
    committed batches stay, the interrupted one left nothing, a rerun does the rest."""
    import aurora_billing.settlement as settlement

    accounts = [make_account(code=f"acc-{i}", users=()) for i in range(3)]
    add_price("email", "sg", "0.01")
    for account in accounts:
        add_usage(account, "sg", "email", "2026-10-10", 100)
    real_prepare = settlement.bills_prepare

    def interrupted(*, accounts, now, period=None):
        if any(a.code == "acc-1" for a in accounts):
            raise KeyboardInterrupt
        return real_prepare(accounts=accounts, now=now, period=period)

    monkeypatch.setattr(settlement, "bills_prepare", interrupted)
    with pytest.raises(KeyboardInterrupt):
        for account in accounts:
            accounts_settle(account_ids=[account.pk], now=AFTER_OCT)
    assert list(Bill.objects.values_list("account__code", flat=True)) == ["acc-0"]
    monkeypatch.setattr(settlement, "bills_prepare", real_prepare)
    report = accounts_settle(account_ids=accounts_due(now=AFTER_OCT), now=AFTER_OCT)
    assert report.settled == [("acc-1", "2026-10"), ("acc-2", "2026-10")]
    assert Bill.objects.count() == 3


def test_rerun_of_a_settled_period_changes_nothing(acme):
    add_price("email", "sg", "0.01")
    add_pack(acme, "sg", "p", 50, "2026-10-01", "2027-10-01")
    add_usage(acme, "sg", "email", "2026-10-10", 100)
    topup(acme, "0.10")
    bill, created = bill_settle(account=acme, period=OCT, now=AFTER_OCT)
    before = snapshot()
    again, created_again = bill_settle(account=acme, period=OCT, now=utc(2026, 12, 1))
    report = accounts_settle(account_ids=[acme.pk], now=utc(2026, 12, 1), period=OCT)
    assert (created, again.pk, created_again) == (True, bill.pk, False)
    assert report.already == [("acme", "2026-10")]
    assert snapshot() == before


def test_one_bill_per_account_and_period_is_a_database_rule(acme):
    from django.db import IntegrityError, transaction

    Bill.objects.create(account=acme, period="2026-10", currency="USD")
    with pytest.raises(IntegrityError), transaction.atomic():
        Bill.objects.create(account=acme, period="2026-10", currency="USD")


def test_ledger_sum_is_the_funds_balance(acme):
    add_price("email", "sg", "0.01")
    add_usage(acme, "sg", "email", "2026-10-10", 100)
    add_usage(acme, "sg", "email", "2026-11-10", 300)
    topup(acme, "2.50", reference="t1")
    topup(acme, "0.75", reference="t2")
    bill_settle(account=acme, period=OCT, now=AFTER_NOV)
    bill_settle(account=acme, period=NOV, now=AFTER_NOV)
    entries = list(LedgerEntry.objects.filter(account=acme).values_list("kind", "amount"))
    assert sorted(entries) == sorted([("topup", Decimal("2.50")), ("topup", Decimal("0.75")),
                                      ("settlement", Decimal("-1.00")), ("settlement", Decimal("-2.25"))])
    assert funds_balances(account_ids=[acme.pk])[acme.pk] == sum(a for _, a in entries) == Decimal("0.00")
    paid = sum(BillLine.objects.filter(bill__account=acme).values_list("paid", flat=True))
    assert paid == Decimal("3.25")


def test_funds_dated_after_the_settlement_do_not_pay_its_bill(worked_example):
    """billing-rules §5: only ledger entries at or before the settlement's
    ``now`` are applied; a top-up booked for 2027-06-01 counts from then."""
    topup_record(account=worked_example, amount=Decimal("100.00"), reference="future",
                 at=utc(2027, 6, 1))
    bill, created = bill_settle(account=worked_example, period=OCT, now=AFTER_OCT)
    assert created and bill.funds_applied == Decimal("5.00")
    assert [money(line) for line in bill.lines.order_by("position")] == [
        (Decimal("5.40"), Decimal("5.00"), Decimal("0.40"), "Overdrawn"),
        (Decimal("1.32"), Decimal("0.00"), Decimal("1.32"), "Overdrawn"),
    ]
    assert funds_balances(account_ids=[worked_example.pk], at=AFTER_OCT)[worked_example.pk] == Decimal("0.00")
    assert funds_balances(account_ids=[worked_example.pk], at=utc(2027, 6, 1))[worked_example.pk] == Decimal("100.00")

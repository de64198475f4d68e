"""Usage import (issue 3): validation of every field, all or nothing,
idempotent re-import, daily totals, late usage and the import_usage command.
Runs on SQLite and PostgreSQL; tests/test_ingest_postgres.py adds the
PostgreSQL-only checks (COPY path against the simple path, concurrency)."""
from __future__ import annotations

import datetime as dt
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from accounts.models import Account
from core.periods import Period
from tests.support import add_price, add_usage, utc
from usage.ingest import ERROR_LIST_CAP, FileSource, ImportRejected, RecordsSource
from usage.models import DailyUsage, ImportOrigin, Region, UsageImport, UsageImportLine
from usage.services import usage_import

NOW = utc(2026, 11, 20, 12, 0)
HEADER = "occurred_at,account,region,service,result,quantity\n"


@pytest.fixture
def catalog(db):
    """Accounts acme and beta (without users: no password hashing), regions sg and hk."""
    Region.objects.create(code="sg", name="Singapore")
    Region.objects.create(code="hk", name="Hong Kong")
    Account.objects.create(code="beta", name="Beta")
    return Account.objects.create(code="acme", name="Acme Ltd")


def write(tmp_path: Path, text: str, name: str = "usage.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def import_file(path: Path, fmt: str | None = None, **kwargs):
    fmt = fmt or ("csv" if path.suffix == ".csv" else "jsonl")
    return usage_import(source=FileSource(path, fmt), now=NOW, **kwargs)


def rejected(path: Path, fmt: str | None = None) -> ImportRejected:
    with pytest.raises(ImportRejected) as info:
        import_file(path, fmt)
    assert DailyUsage.objects.count() == 0
    assert UsageImport.objects.count() == 0
    assert UsageImportLine.objects.count() == 0
    return info.value


def daily() -> dict[tuple, Decimal]:
    return {(r.account.code, r.region_id, r.service_id, r.result, r.day.isoformat()): r.quantity
            for r in DailyUsage.objects.select_related("account")}


# --- records add up into daily usage ------------------------------------------


def test_csv_records_add_up_per_daily_key(catalog, tmp_path):
    path = write(tmp_path, HEADER + (
        "2026-10-05T09:30:00+08:00,acme,sg,email,delivered,8000\n"
        "2026-10-05T23:59:59+08:00,acme,sg,email,delivered,2000\n"
        "2026-10-05T01:00:00Z,acme,sg,email,soft_bounce,7\n"
        "2026-10-05,acme,sg,data_flow,,20.5\n"
        "2026-10-05T12:00:00-05:00,acme,sg,data_flow,,0.000001\n"  # 2026-10-06 01:00 UTC+8
        "2026-10-05,acme,hk,dedicated_ip,,2\n"
        "2026-10-05,beta,sg,data_masking,,300\n"
        "2026-10-05,beta,sg,bimi_certification,,1\n"
    ))
    outcome = import_file(path)
    assert not outcome.duplicate
    batch = outcome.usage_import
    assert (batch.records, batch.daily_rows, batch.late_rows) == (8, 7, 0)
    assert batch.origin == ImportOrigin.FILE and batch.name == str(path) and batch.format == "csv"
    assert daily() == {
        ("acme", "sg", "email", "delivered", "2026-10-05"): Decimal("10000"),
        ("acme", "sg", "email", "soft_bounce", "2026-10-05"): Decimal("7"),
        ("acme", "sg", "data_flow", "", "2026-10-05"): Decimal("20.5"),
        ("acme", "sg", "data_flow", "", "2026-10-06"): Decimal("0.000001"),
        ("acme", "hk", "dedicated_ip", "", "2026-10-05"): Decimal("2"),
        ("beta", "sg", "data_masking", "", "2026-10-05"): Decimal("300"),
        ("beta", "sg", "bimi_certification", "", "2026-10-05"): Decimal("1"),
    }
    # The import log says which quantities this file brought.
    lines = {(line.account.code, line.service_id, line.result, line.day.isoformat()): line.quantity
             for line in batch.lines.select_related("account")}
    assert lines[("acme", "email", "delivered", "2026-10-05")] == Decimal("10000")
    assert len(lines) == 7


def test_imports_add_to_existing_daily_usage_and_never_touch_billed_quantity(catalog, tmp_path):
    row = add_usage(catalog, "sg", "email", "2026-10-05", "500")
    DailyUsage.objects.filter(pk=row.pk).update(billed_quantity=Decimal("400"))
    import_file(write(tmp_path, HEADER + "2026-10-05,acme,sg,email,delivered,25\n"))
    row.refresh_from_db()
    assert (row.quantity, row.billed_quantity) == (Decimal("525"), Decimal("400"))
    assert DailyUsage.objects.count() == 1


@pytest.mark.parametrize(("occurred_at", "day"), [
    ("2026-09-30T15:59:59Z", "2026-09-30"),
    ("2026-09-30T16:00:00Z", "2026-10-01"),
    ("2026-09-30T23:59:59+08:00", "2026-09-30"),
    ("2026-10-01T00:00:00+08:00", "2026-10-01"),
    ("2026-09-30T15:59:59.999999+00:00", "2026-09-30"),
    ("2026-09-30T11:00:00-05:00", "2026-10-01"),
    ("2026-09-30", "2026-09-30"),
    ("2026-10-31T16:00:00Z", "2026-11-01"),
])
def test_utc8_day_boundary(catalog, tmp_path, occurred_at, day):
    import_file(write(tmp_path, HEADER + f"{occurred_at},acme,sg,email,delivered,1\n"))
    assert list(DailyUsage.objects.values_list("day", flat=True)) == [dt.date.fromisoformat(day)]


def test_boundary_instants_fall_in_different_periods(catalog, tmp_path):
    import_file(write(tmp_path, HEADER + "2026-09-30T15:59:59Z,acme,sg,email,delivered,3\n"
                                         "2026-09-30T16:00:00Z,acme,sg,email,delivered,4\n"))
    assert daily() == {("acme", "sg", "email", "delivered", "2026-09-30"): Decimal("3"),
                       ("acme", "sg", "email", "delivered", "2026-10-01"): Decimal("4")}


def test_memoised_days_follow_each_instant(catalog, tmp_path):
    """Instants of one hour with a whole-hour offset share a memoised day;
    minutes and seconds are still validated one by one, and other offsets
    are not memoised by the hour."""
    rows = ["2026-09-30T15:59:58Z", "2026-09-30T15:00:00Z", "2026-09-30T15:61:00Z", "2026-09-30T15:59:60Z",
            "2026-09-30T23:30:00+05:30", "2026-09-30T23:00:00+05:30", "2026-09-30T15:30:00.5Z"]
    path = write(tmp_path, HEADER + "".join(f"{r},acme,sg,email,delivered,1\n" for r in rows))
    assert rejected(path).report() == [
        f"line {n}: occurred_at '{rows[n - 2]}' is neither YYYY-MM-DD nor an ISO 8601 instant with offset"
        for n in (4, 5)]
    del rows[2:4]
    import_file(write(tmp_path, HEADER + "".join(f"{r},acme,sg,email,{res},1\n" for r, res in zip(
        rows, ["delivered", "reject", "not_exist", "junk_mail", "soft_bounce"], strict=True))))
    assert sorted((r.result, r.day.isoformat()) for r in DailyUsage.objects.all()) == [
        ("delivered", "2026-09-30"), ("junk_mail", "2026-10-01"), ("not_exist", "2026-10-01"),
        ("reject", "2026-09-30"), ("soft_bounce", "2026-09-30")]


def test_csv_columns_in_any_order(catalog, tmp_path):
    import_file(write(tmp_path, "account,quantity,service,region,result,occurred_at\n"
                                "acme,5,email,sg,reject,2026-10-05\n"))
    assert daily() == {("acme", "sg", "email", "reject", "2026-10-05"): Decimal("5")}


def test_csv_with_byte_order_mark_crlf_and_blank_lines(catalog, tmp_path):
    path = write(tmp_path, ("\ufeff" + HEADER + "2026-10-05,acme,sg,email,delivered,5\n\n"
                            "2026-10-05,acme,sg,email,delivered,6\n").replace("\n", "\r\n"))
    assert import_file(path).usage_import.records == 2
    assert daily() == {("acme", "sg", "email", "delivered", "2026-10-05"): Decimal("11")}


def test_jsonl_records_equal_csv_records(catalog, tmp_path):
    records = [
        {"occurred_at": "2026-10-05T09:30:00+08:00", "account": "acme", "region": "sg", "service": "email",
         "result": "delivered", "quantity": 8000},
        {"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "data_flow",
         "result": None, "quantity": "20.5"},
        {"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "data_masking",
         "quantity": 4},
    ]
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    # A JSON number with decimals is read exactly, never through a float.
    text += '{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "data_flow", ' \
            '"result": "", "quantity": 0.1}\n'
    batch = import_file(write(tmp_path, text, "usage.jsonl")).usage_import
    assert (batch.records, batch.format) == (4, "jsonl")
    assert daily() == {
        ("acme", "sg", "email", "delivered", "2026-10-05"): Decimal("8000"),
        ("acme", "sg", "data_flow", "", "2026-10-05"): Decimal("20.6"),
        ("acme", "sg", "data_masking", "", "2026-10-05"): Decimal("4"),
    }


# --- every validation rule ------------------------------------------------------------

GOOD = "2026-10-05,acme,sg,email,delivered,1"


@pytest.mark.parametrize(("row", "reason"), [
    ("2026-10-05,acmx,sg,email,delivered,1", "unknown account 'acmx'"),
    ("2026-10-05,,sg,email,delivered,1", "account is empty"),
    ("2026-10-05,ACME,sg,email,delivered,1", "unknown account 'ACME'"),
    ("2026-10-05,acme,mars,email,delivered,1", "unknown region 'mars'"),
    ("2026-10-05,acme,,email,delivered,1", "region is empty"),
    ("2026-10-05,acme,sg,sms,,1",
     "unknown service 'sms' (one of email, data_flow, dedicated_ip, data_masking, bimi_certification)"),
    ("2026-10-05,acme,sg,,,1", "service is empty"),
    ("2026-10-05,acme,sg,email,,1",
     "email needs a result (one of delivered, soft_bounce, format_error, not_exist, reject, junk_mail)"),
    ("2026-10-05,acme,sg,email,bounced,1",
     "unknown email result 'bounced' (one of delivered, soft_bounce, format_error, not_exist, reject, junk_mail)"),
    ("2026-10-05,acme,sg,data_flow,delivered,1", "data_flow takes no result, got 'delivered'"),
    ("2026-10-05,acme,sg,dedicated_ip,reject,1", "dedicated_ip takes no result, got 'reject'"),
    (",acme,sg,email,delivered,1", "occurred_at is empty"),
    ("2026-02-30,acme,sg,email,delivered,1", "occurred_at '2026-02-30' is not a real date"),
    ("05/10/2026,acme,sg,email,delivered,1",
     "occurred_at '05/10/2026' is neither YYYY-MM-DD nor an ISO 8601 instant with offset"),
    ("2026-10-05T09:30:00,acme,sg,email,delivered,1",
     "occurred_at '2026-10-05T09:30:00' has no UTC offset (add Z or +08:00)"),
    ("2026-10-05T25:30:00+08:00,acme,sg,email,delivered,1",
     "occurred_at '2026-10-05T25:30:00+08:00' is neither YYYY-MM-DD nor an ISO 8601 instant with offset"),
    ("1999-12-31,acme,sg,email,delivered,1", "occurred_at '1999-12-31' is outside 2000-2099"),
    ("2026-10-05,acme,sg,email,delivered,", "quantity is empty"),
    ("2026-10-05,acme,sg,email,delivered,many",
     "quantity 'many' is not a whole number in plain digits 0-9 (no sign, spaces, exponent or separators)"),
    ("2026-10-05,acme,sg,email,delivered,-1", "quantity must be ≥ 0"),
    ("2026-10-05,acme,sg,data_flow,,Infinity",
     "quantity 'Infinity' is not a plain decimal: digits 0-9, and at most 6 decimals after a '.' "
     "(no sign, spaces, exponent or separators)"),
    ("2026-10-05,acme,sg,data_flow,,1.1234567", "quantity '1.1234567' has more than 6 decimal places"),
    ("2026-10-05,acme,sg,data_flow,,100000000000000",
     "quantity '100000000000000' is too large (at most 99999999999999.999999)"),
    ("2026-10-05,acme,sg,email,delivered,1.5", "email quantity must be a whole number, got '1.5'"),
    ("2026-10-05,acme,sg,dedicated_ip,,0.5", "dedicated_ip quantity must be a whole number, got '0.5'"),
    ("2026-10-05,acme,sg,data_masking,,2.25", "data_masking quantity must be a whole number, got '2.25'"),
    ("2026-10-05,acme,sg,bimi_certification,,0.1",
     "bimi_certification quantity must be a whole number, got '0.1'"),
    ("2026-10-05,acme,sg,email,delivered", "expected 6 fields, got 5"),
    ("2026-10-05,1", "expected 6 fields, got 2"),
    ("2026-10-05,acme,sg,email,delivered,1,1", "expected 6 fields, got 7"),
    ('2026-10-05,"ac,me",sg,email,delivered,1', "account holds a comma or a line break"),
    ('2026-10-05,acme,sg,email,delivered,"1\n"', "quantity holds a comma or a line break"),
    ("2026-10-05,acme,sg,email,delivered,1,extra", "expected 6 fields, got 7"),
    ("2026-10-05T09:30:00,acmx,mars,email,,-1",
     "unknown account 'acmx'; unknown region 'mars'; email needs a result (one of delivered, soft_bounce, "
     "format_error, not_exist, reject, junk_mail); occurred_at '2026-10-05T09:30:00' has no UTC offset "
     "(add Z or +08:00); quantity must be ≥ 0"),
])
def test_each_bad_field_rejects_the_file(catalog, tmp_path, row, reason):
    error = rejected(write(tmp_path, HEADER + GOOD + "\n" + row + "\n" + GOOD + "\n"))
    assert error.report() == [f"line 3: {reason}"]
    assert error.summary() == "1 bad line; nothing was stored"


@pytest.mark.parametrize("row", [
    "2026-10-05,acme,sg,data_flow,,0.000001",
    "2026-10-05,acme,sg,data_flow,,12",
    "2026-10-05,acme,sg,email,delivered,0",
    "2026-10-05,acme,sg,data_flow,,999999999.999999",
])
def test_edge_quantities_are_accepted(catalog, tmp_path, row):
    assert import_file(write(tmp_path, HEADER + row + "\n")).usage_import.records == 1


WHOLE_FORM = "is not a whole number in plain digits 0-9 (no sign, spaces, exponent or separators)"
DECIMAL_FORM = ("is not a plain decimal: digits 0-9, and at most 6 decimals after a '.' "
                "(no sign, spaces, exponent or separators)")
# Quantities that Decimal() reads but the grammar refuses (issue #13.2): a
# whole-number service takes 0|[1-9][0-9]*, data_flow also a plain decimal
# with at most 6 places.
LAX_QUANTITIES = [
    ("email,delivered", "1e3", f"quantity '1e3' {WHOLE_FORM}"),
    ("email,delivered", "1E3", f"quantity '1E3' {WHOLE_FORM}"),
    ("email,delivered", "\uff11\uff10", f"quantity '\uff11\uff10' {WHOLE_FORM}"),  # full-width 10
    ("email,delivered", "\u0663", f"quantity '\u0663' {WHOLE_FORM}"),  # Arabic-Indic 3
    ("email,delivered", "1_000", f"quantity '1_000' {WHOLE_FORM}"),
    ("email,delivered", " 5 ", f"quantity ' 5 ' {WHOLE_FORM}"),
    ("email,delivered", "5 ", f"quantity '5 ' {WHOLE_FORM}"),
    ("email,delivered", "\u00a05", f"quantity '\\xa05' {WHOLE_FORM}"),  # no-break space
    ("email,delivered", "+7", f"quantity '+7' {WHOLE_FORM}"),
    ("email,delivered", "-0", f"quantity '-0' {WHOLE_FORM}"),
    ("email,delivered", "0x10", f"quantity '0x10' {WHOLE_FORM}"),
    ("email,delivered", "5.", f"quantity '5.' {WHOLE_FORM}"),
    ("email,delivered", ".5", f"quantity '.5' {WHOLE_FORM}"),
    ("email,delivered", "007", "quantity '007' has a leading zero"),
    ("email,delivered", "00", "quantity '00' has a leading zero"),
    ("email,delivered", "8000.0", "email quantity must be a whole number, got '8000.0'"),
    ("dedicated_ip,", "2.000000", "dedicated_ip quantity must be a whole number, got '2.000000'"),
    ("data_flow,", "1e3", f"quantity '1e3' {DECIMAL_FORM}"),
    ("data_flow,", "1.5e0", f"quantity '1.5e0' {DECIMAL_FORM}"),
    ("data_flow,", "\uff11.\uff15", f"quantity '\uff11.\uff15' {DECIMAL_FORM}"),
    ("data_flow,", "\u0661\u066b\u0665", f"quantity '\u0661\u066b\u0665' {DECIMAL_FORM}"),
    ("data_flow,", "1_000.5", f"quantity '1_000.5' {DECIMAL_FORM}"),
    ("data_flow,", " 1.5", f"quantity ' 1.5' {DECIMAL_FORM}"),
    ("data_flow,", "+1.5", f"quantity '+1.5' {DECIMAL_FORM}"),
    ("data_flow,", "-0.0", f"quantity '-0.0' {DECIMAL_FORM}"),
    ("data_flow,", "-0", f"quantity '-0' {DECIMAL_FORM}"),
    ("data_flow,", "1.", f"quantity '1.' {DECIMAL_FORM}"),
    ("data_flow,", ".5", f"quantity '.5' {DECIMAL_FORM}"),
    ("data_flow,", "NaN", f"quantity 'NaN' {DECIMAL_FORM}"),
    ("data_flow,", "01.5", "quantity '01.5' has a leading zero"),
    ("data_flow,", "-2.5", "quantity must be ≥ 0"),
]


@pytest.mark.parametrize(("kind", "quantity", "reason"), LAX_QUANTITIES)
def test_lax_quantities_are_refused_in_csv(catalog, tmp_path, kind, quantity, reason):
    error = rejected(write(tmp_path, HEADER + GOOD + f"\n2026-10-05,acme,sg,{kind},{quantity}\n"))
    assert error.report() == [f"line 3: {reason}"]


@pytest.mark.parametrize(("kind", "quantity", "reason"), LAX_QUANTITIES)
def test_lax_quantities_are_refused_in_jsonl(catalog, tmp_path, kind, quantity, reason):
    service, result = kind.split(",")
    record = {"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": service,
              "result": result, "quantity": quantity}
    good = json.dumps(dict(record, service="email", result="delivered", quantity=1))
    error = rejected(write(tmp_path, f"{good}\n{json.dumps(record)}\n", "usage.jsonl"))
    assert error.report() == [f"line 2: {reason}"]


@pytest.mark.parametrize(("service", "number", "reason"), [
    ("email", "1e3", f"quantity '1e3' {WHOLE_FORM}"),
    ("email", "1E+3", f"quantity '1E+3' {WHOLE_FORM}"),
    ("email", "-0", f"quantity '-0' {WHOLE_FORM}"),
    ("email", "8000.0", "email quantity must be a whole number, got '8000.0'"),
    ("data_flow", "1e3", f"quantity '1e3' {DECIMAL_FORM}"),
    ("data_flow", "2.5E-1", f"quantity '2.5E-1' {DECIMAL_FORM}"),
    ("data_flow", "-0.0", f"quantity '-0.0' {DECIMAL_FORM}"),
    ("data_flow", "-0", f"quantity '-0' {DECIMAL_FORM}"),
    ("data_flow", "0.0000001", "quantity '0.0000001' has more than 6 decimal places"),
])
def test_json_numbers_are_checked_as_written(catalog, tmp_path, service, number, reason):
    """A JSON number is held to the grammar in the form it was written."""
    result = '"delivered"' if service == "email" else "null"
    line = (f'{{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "{service}", '
            f'"result": {result}, "quantity": {number}}}')
    assert rejected(write(tmp_path, line + "\n", "usage.jsonl")).report() == [f"line 1: {reason}"]


@pytest.mark.parametrize(("kind", "quantity", "value"), [
    ("email,delivered", "0", "0"),
    ("email,delivered", "10", "10"),
    ("email,delivered", "99999999999999", "99999999999999"),
    ("data_flow,", "0", "0"),
    ("data_flow,", "0.5", "0.5"),
    ("data_flow,", "123.456789", "123.456789"),
    ("data_flow,", "0.000000", "0"),
    ("data_flow,", "10.50", "10.5"),
])
def test_plain_quantities_are_accepted(catalog, tmp_path, kind, quantity, value):
    import_file(write(tmp_path, HEADER + f"2026-10-05,acme,sg,{kind},{quantity}\n"))
    assert DailyUsage.objects.get().quantity == Decimal(value)


def test_whole_quantity_memo_does_not_leak_to_whole_services(catalog, tmp_path):
    """A decimal accepted for data_flow is still refused for email later."""
    error = rejected(write(tmp_path, HEADER + "2026-10-05,acme,sg,data_flow,,1.5\n"
                                              "2026-10-05,acme,sg,email,delivered,1.5\n"
                                              "2026-10-06,acme,sg,email,delivered,1.5\n"))
    assert error.report() == ["line 3: email quantity must be a whole number, got '1.5'",
                              "line 4: email quantity must be a whole number, got '1.5'"]


def test_invalid_utf8_is_reported_on_its_line(catalog, tmp_path):
    error = rejected(write(tmp_path, (HEADER + GOOD + "\n").encode() + b"2026-10-05,ac\xffme,sg,email,delivered,1\n"))
    assert error.report() == ["line 3: not valid UTF-8"]


def test_unclosed_quote_is_reported(catalog, tmp_path):
    error = rejected(write(tmp_path, HEADER + GOOD + '\n"2026-10-05,acme,sg,email,delivered,1\n'))
    assert error.report() == ["line 3: unreadable: unexpected end of data (a quote that is never closed?)"]


@pytest.mark.parametrize(("text", "reason"), [
    ("", "line 1: the file is empty; expected the header occurred_at,account,region,service,result,quantity"),
    ("occurred_at,account,region,service,quantity\n" + GOOD + "\n",
     "line 1: header must name the columns occurred_at,account,region,service,result,quantity; "
     "got 'occurred_at,account,region,service,quantity'"),
    ("occurred_at,account,region,service,result,qty\n",
     "line 1: header must name the columns occurred_at,account,region,service,result,quantity; "
     "got 'occurred_at,account,region,service,result,qty'"),
    (GOOD + "\n", "line 1: header must name the columns occurred_at,account,region,service,result,quantity; "
                  "got '2026-10-05,acme,sg,email,delivered,1'"),
])
def test_bad_header(catalog, tmp_path, text, reason):
    assert rejected(write(tmp_path, text)).report() == [reason]


def test_header_only_file_imports_nothing(catalog, tmp_path):
    batch = import_file(write(tmp_path, HEADER)).usage_import
    assert (batch.records, batch.daily_rows) == (0, 0)
    assert DailyUsage.objects.count() == 0


@pytest.mark.parametrize(("line", "reason"), [
    ('["2026-10-05", "acme"]', "expected a JSON object with the keys occurred_at, account, region, service, "
                               "result, quantity"),
    ('{"occurred_at": "2026-10-05", "account": "acme"', "not valid JSON: Expecting ',' delimiter: line 1 column 48 "
                                                        "(char 47)"),
    ('{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email", "result": "delivered"}',
     "quantity is missing"),
    ('{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email", "result": "delivered", '
     '"quantity": 1, "note": "x"}', "unknown key(s) 'note'"),
    ('{"occurred_at": 20261005, "account": "acme", "region": "sg", "service": "email", "result": "delivered", '
     '"quantity": 1}', "occurred_at must be a string, got 20261005"),
    ('{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email", "result": "delivered", '
     '"quantity": true}', "quantity must be a string, got true"),
    ('{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "data_flow", "result": null, '
     '"quantity": NaN}', "not valid JSON: NaN is not a number"),
    ('{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email", "result": "delivered", '
     '"quantity": 1.5}', "email quantity must be a whole number, got '1.5'"),
    ('{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email", "result": "delivered", '
     '"quantity": -3}', "quantity must be ≥ 0"),
])
def test_jsonl_bad_lines(catalog, tmp_path, line, reason):
    good = json.dumps({"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email",
                       "result": "delivered", "quantity": "1"})
    error = rejected(write(tmp_path, f"{good}\n\n{line}\n{good}\n", "usage.jsonl"))
    assert error.report() == [f"line 3: {reason}"]


@pytest.mark.parametrize("depth", [33, 200, 100_000])
@pytest.mark.parametrize("shape", ["[{}]", '{{"occurred_at": "2026-10-05", "quantity": {}}}'])
def test_jsonl_deeply_nested_line_is_a_line_error(catalog, tmp_path, depth, shape):
    good = json.dumps({"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email",
                       "result": "delivered", "quantity": "1"})
    nested = shape.format("[" * depth + "]" * depth)
    error = rejected(write(tmp_path, f"{good}\n{nested}\n{good}\n", "usage.jsonl"))
    assert error.report() == ["line 2: JSON nested deeper than 32 levels"]


def test_jsonl_nesting_up_to_the_limit_is_an_ordinary_bad_line(catalog, tmp_path):
    line = '{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email", ' \
           '"result": "delivered", "quantity": ' + "[" * 31 + "]" * 31 + "}"
    error = rejected(write(tmp_path, line + "\n", "usage.jsonl"))
    assert error.report() == ["line 1: quantity must be a string, got " + "[" * 31 + "]" * 9 + "…"]


def test_jsonl_invalid_utf8(catalog, tmp_path):
    error = rejected(write(tmp_path, b'{"occurred_at": "2026-10-05", "account": "ac\xffme"}\n', "usage.jsonl"))
    assert error.report() == ["line 1: not valid UTF-8"]


# --- all or nothing -----------------------------------------------------------------


def test_one_bad_row_stores_nothing_and_existing_usage_is_unchanged(catalog, tmp_path):
    add_usage(catalog, "sg", "email", "2026-10-05", "100")
    path = write(tmp_path, HEADER + GOOD + "\n" + GOOD + "\n" + "2026-10-05,acme,sg,email,delivered,x\n")
    with pytest.raises(ImportRejected):
        import_file(path)
    assert daily() == {("acme", "sg", "email", "delivered", "2026-10-05"): Decimal("100")}
    assert not UsageImport.objects.exists()


def test_every_bad_line_is_counted_and_the_listing_is_capped(catalog, tmp_path):
    bad = "2026-10-05,nobody,sg,email,delivered,1\n"
    error = rejected(write(tmp_path, HEADER + GOOD + "\n" + bad * 250))
    report = error.report()
    assert error.total == 250
    assert len(report) == ERROR_LIST_CAP + 1
    assert report[0] == "line 3: unknown account 'nobody'"
    assert report[ERROR_LIST_CAP - 1] == f"line {ERROR_LIST_CAP + 2}: unknown account 'nobody'"
    assert report[-1] == "… and 150 more bad lines"
    assert error.summary() == "250 bad lines; nothing was stored"


def test_bad_row_at_line_999999_of_a_million_stores_nothing(catalog, tmp_path):
    """The last-but-one line of a 1,000,000-line file is bad: nothing from
    the 999,998 good rows before it is stored, and the line is named."""
    good = [f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}+08:00,"
            f"{'acme' if i % 3 else 'beta'},{'sg' if i % 2 else 'hk'},email,delivered,{i % 50}\n"
            for i in range(1000)]
    path = tmp_path / "million.csv"
    with path.open("w") as f:
        f.write(HEADER)
        for _ in range(999):  # lines 2 … 999,001
            f.writelines(good)
        f.writelines(good[:997])  # lines … 999,998
        f.write("2026-10-05,acme,sg,email,delivered,12.5\n")  # line 999,999
        f.write(good[0])  # line 1,000,000
    seen = []
    with pytest.raises(ImportRejected) as info:
        import_file(path, progress=lambda records, bytes_read: seen.append((records, bytes_read)))
    assert info.value.report() == ["line 999999: email quantity must be a whole number, got '12.5'"]
    assert not DailyUsage.objects.exists() and not UsageImport.objects.exists()
    assert not UsageImportLine.objects.exists()
    # Progress is reported while the file streams, and at its end.
    assert len(seen) >= 15
    assert seen[-1] == (999_999, path.stat().st_size)
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(seen, seen[1:], strict=False))


# --- idempotent re-import --------------------------------------------------------


def test_reimporting_the_same_content_is_a_no_op(catalog, tmp_path):
    text = HEADER + "2026-10-05,acme,sg,email,delivered,7\n"
    first = import_file(write(tmp_path, text))
    again = import_file(write(tmp_path, text))
    copy = import_file(write(tmp_path, text, "renamed.csv"))
    assert again.duplicate and copy.duplicate
    assert again.usage_import == first.usage_import == copy.usage_import
    assert daily() == {("acme", "sg", "email", "delivered", "2026-10-05"): Decimal("7")}
    changed = import_file(write(tmp_path, text + "2026-10-05,acme,sg,email,delivered,1\n"))
    assert not changed.duplicate
    assert daily() == {("acme", "sg", "email", "delivered", "2026-10-05"): Decimal("15")}
    assert UsageImport.objects.count() == 2


def test_a_rejected_file_can_be_imported_once_fixed(catalog, tmp_path):
    path = write(tmp_path, HEADER + "2026-10-05,acme,sg,email,delivered,x\n")
    with pytest.raises(ImportRejected):
        import_file(path)
    write(tmp_path, HEADER + "2026-10-05,acme,sg,email,delivered,3\n")
    assert not import_file(path).duplicate


# --- late usage (billing-rules §5) -----------------------------------------------


def test_usage_for_a_settled_period_is_marked_late(catalog, tmp_path):
    beta = Account.objects.get(code="beta")
    billed = add_usage(catalog, "sg", "email", "2026-09-10", "100")
    DailyUsage.objects.filter(pk=billed.pk).update(billed_quantity=Decimal("100"))
    add_usage(beta, "sg", "email", "2026-09-10", "50")  # beta's September is not settled
    path = write(tmp_path, HEADER + (
        "2026-09-10,acme,sg,email,delivered,5\n"       # same row as the billed one: late
        "2026-09-30T15:00:00Z,acme,hk,data_flow,,1.5\n"  # another row of acme's settled September: late
        "2026-09-30T16:00:00Z,acme,sg,email,delivered,9\n"  # October: not settled
        "2026-09-12,beta,sg,email,delivered,4\n"       # beta September: not settled
    ))
    batch = import_file(path).usage_import
    assert (batch.daily_rows, batch.late_rows) == (4, 2)
    late = {(line.account_id, line.service_id, line.day.isoformat(), line.quantity)
            for line in batch.lines.filter(late=True)}
    assert late == {(catalog.pk, "email", "2026-09-10", Decimal("5")),
                    (catalog.pk, "data_flow", "2026-09-30", Decimal("1.5"))}
    billed.refresh_from_db()
    assert (billed.quantity, billed.billed_quantity) == (Decimal("105"), Decimal("100"))


def test_late_usage_is_billed_once_in_the_next_settlement(catalog, tmp_path):
    from aurora_billing.settlement import accounts_settle
    from invoices.models import BillLine

    add_price("email", "sg", "0.001000")
    import_file(write(tmp_path, HEADER + "2026-10-05,acme,sg,email,delivered,1000\n"))
    october = Period(2026, 10)
    accounts_settle(account_ids=[catalog.pk], period=october, now=october.bill_time)
    late = import_file(write(tmp_path, HEADER + "2026-10-20T10:00:00+08:00,acme,sg,email,delivered,300\n",
                             "late.csv")).usage_import
    assert late.late_rows == 1
    november = Period(2026, 11)
    for _ in range(2):  # settling again bills nothing twice
        accounts_settle(account_ids=[catalog.pk], now=november.bill_time)
    adjustments = BillLine.objects.filter(bill__account=catalog).exclude(adjustment_for="")
    assert [(line.bill.period, line.adjustment_for, line.usage_quantity) for line in adjustments] == [
        ("2026-11", "2026-10", Decimal("300"))]
    assert sorted(DailyUsage.objects.values_list("day", "quantity", "billed_quantity")) == [
        (dt.date(2026, 10, 5), Decimal("1000"), Decimal("1000")),
        (dt.date(2026, 10, 20), Decimal("300"), Decimal("300")),
    ]


def test_month_to_date_estimate_reflects_an_import_at_once(catalog, tmp_path):
    from invoices.selectors import billing_estimate

    add_price("email", "sg", "0.000300")
    import_file(write(tmp_path, HEADER + "2026-11-03,acme,sg,email,delivered,10000\n"))
    estimate = billing_estimate(account=catalog, period=Period(2026, 11))
    assert [(line.service, line.region, line.usage_quantity, line.amount) for line in estimate.lines] == [
        ("email", "sg", Decimal("10000"), Decimal("3.00"))]


# --- records (API, seed_demo) -------------------------------------------------------


def test_records_source_reports_indexes(catalog):
    records = [
        {"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email",
         "result": "delivered", "quantity": 1},
        {"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "email", "quantity": 1},
        "not an object",
    ]
    with pytest.raises(ImportRejected) as info:
        usage_import(source=RecordsSource(records=records, name="test"), now=NOW)
    assert info.value.report() == [
        "record 1: email needs a result (one of delivered, soft_bounce, format_error, not_exist, reject, junk_mail)",
        "record 2: expected a JSON object with the keys occurred_at, account, region, service, result, quantity",
    ]


def test_seed_records_import_through_the_same_service(catalog):
    from aurora_billing.management.commands.seed_demo import demo_usage

    october = Period(2026, 10)
    records = demo_usage(catalog, [october], dt.date(2026, 10, 3), 1000, ["sg", "hk"], seed=1)
    batch = usage_import(source=RecordsSource(records=records, name="seed_demo", origin=ImportOrigin.SEED),
                         now=NOW).usage_import
    assert batch.records == len(records) == batch.daily_rows
    assert DailyUsage.objects.filter(account=catalog, service="dedicated_ip").count() == 2


# --- the command ---------------------------------------------------------------------


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_usage", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_imports_reports_and_skips_a_reimport(catalog, tmp_path):
    path = write(tmp_path, HEADER + "2026-10-05,acme,sg,email,delivered,8000\n2026-10-05,acme,sg,data_flow,,20.5\n")
    out, err = run(str(path))
    batch = UsageImport.objects.get()
    assert out.startswith(f"{path}: imported 2 records into 2 daily usage rows in ")
    assert out.endswith(f" s (import #{batch.pk})\n")
    assert err == ""
    out, _ = run(str(path))
    assert out == (f"{path}: already imported (import #{batch.pk}, {batch.imported_at:%Y-%m-%d %H:%M} UTC); "
                   "nothing changed\n")


def test_command_reports_bad_lines_and_exits_non_zero(catalog, tmp_path):
    good = write(tmp_path, HEADER + GOOD + "\n", "good.csv")
    bad = write(tmp_path, HEADER + GOOD + "\n2026-10-05,acme,sg,email,delivered,-1\n"
                "2026-10-05,acme,mars,email,delivered,1\n", "bad.jsonl")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("import_usage", str(bad), str(good), "--format", "csv", stdout=out, stderr=err)
    assert str(info.value) == "1 of 2 file(s) rejected; nothing was stored from them"
    assert err.getvalue() == (f"{bad}: rejected, 2 bad lines; nothing was stored\n"
                              "line 3: quantity must be ≥ 0\nline 4: unknown region 'mars'\n")
    assert out.getvalue().startswith(f"{good}: imported 1 records")
    assert UsageImport.objects.get().name == str(good)


@pytest.mark.parametrize(("args", "message"), [
    (["missing.csv"], "missing.csv: no such file"),
    (["{tmp}/usage.txt"], "cannot tell the format of usage.txt from its extension; use --format csv|jsonl"),
])
def test_command_bad_arguments(catalog, tmp_path, args, message):
    write(tmp_path, HEADER, "usage.txt")
    with pytest.raises(CommandError) as info:
        run(*[a.format(tmp=tmp_path) for a in args])
    assert str(info.value) == message


# --- plain lines and the csv module read the same records ------------------------


@pytest.fixture
def small_batches(monkeypatch):
    """Progress and flushes every 64 records: totals of one key reach the
    loader in many parts."""
    from usage.ingest import totals

    monkeypatch.setattr(totals, "PROGRESS_EVERY", 64)
    monkeypatch.setattr(totals, "FLUSH_KEYS", 50)


def mixed_lines(n: int) -> list[str]:
    return [f"2026-10-{1 + i % 9:02d}T{i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}{'Z' if i % 2 else '+08:00'},"
            f"{'acme' if i % 3 else 'beta'},{'sg' if i % 5 else 'hk'},"
            + (f"email,delivered,{i % 50}\n" if i % 4 else f"data_flow,,{i % 7}.{i % 1000:03d}\n")
            for i in range(n)]


def quoted(lines: list[str]) -> list[str]:
    return [",".join(f'"{field}"' for field in line.rstrip("\n").split(",")) + "\r\n" for line in lines]


def test_plain_and_quoted_files_give_the_same_totals(catalog, tmp_path, small_batches):
    lines = mixed_lines(3000)
    plain = write(tmp_path, HEADER + "".join(lines) + "2026-10-05,acme,sg,email,delivered,1", "plain.csv")
    assert FileSource(plain, "csv").scan.plain is True
    seen = []
    with transaction.atomic():
        batch = import_file(plain, progress=lambda r, b: seen.append((r, b))).usage_import
        expected = (batch.records, daily())
        transaction.set_rollback(True)
    assert expected[0] == 3001 and seen[-1] == (3001, plain.stat().st_size)
    path = write(tmp_path, HEADER + "".join(quoted(lines)) + "2026-10-05,acme,sg,email,delivered,1\n", "quoted.csv")
    assert FileSource(path, "csv").scan.plain is False
    assert (import_file(path).usage_import.records, daily()) == expected


@pytest.mark.parametrize("quote", [False, True])
def test_bad_lines_are_reported_in_order_with_their_numbers(catalog, tmp_path, small_batches, quote):
    lines = mixed_lines(3000)
    for number in (2, 1500, 1501, 2999, 3001):  # line numbers (the header is line 1)
        lines[number - 2] = "2026-10-05,acme,sg,email,delivered,-1\n"
    lines[1200] = "\n"  # a blank line (1202) is skipped, not reported
    lines = quoted(lines[:1200]) + ["\n"] + quoted(lines[1201:]) if quote else lines
    error = rejected(write(tmp_path, HEADER + "".join(lines)))
    assert error.report() == [f"line {n}: quantity must be ≥ 0" for n in (2, 1500, 1501, 2999, 3001)]


def flushes_of(text: str, tmp_path: Path, monkeypatch) -> list[dict]:
    """What aggregate hands to its flush, call by call, with checkpoints
    every 64 records; the totals as {(kind, day): quantity}."""
    from usage.ingest import Catalog, aggregate, totals

    monkeypatch.setattr(totals, "PROGRESS_EVERY", 64)
    catalog = Catalog({"acme": 1, "beta": 2}, {"sg", "hk"})
    flushes = []

    def flush(days):
        flushes.append({(kind, day): quantity for day, per_day in days.items() for kind, quantity in per_day.items()})

    aggregate(FileSource(write(tmp_path, HEADER + text), "csv"), catalog=catalog, flush=flush)
    return flushes


def test_days_without_new_records_are_flushed_while_reading(tmp_path, monkeypatch):
    """A file in time order reaches the loader day by day (so the COPY
    loader writes while it reads); a day that comes back is flushed again,
    and every record is in exactly one flush."""
    lines = [f"2026-10-{day:02d}T{i % 24:02d}:00:00+08:00,{'acme' if i % 2 else 'beta'},sg,email,delivered,1\n"
             for day in range(1, 11) for i in range(100)]
    lines.append("2026-10-01,acme,sg,email,delivered,5\n")  # a straggler for the first day
    flushes = flushes_of("".join(lines), tmp_path, monkeypatch)
    assert len(flushes) > 5
    days = [sorted({day.day for _, day in flush}) for flush in flushes]
    assert days[0] == [1]  # day 1 had no record between the 2nd and 3rd checkpoints
    assert all(max(a) < min(b) for a, b in zip(days[:-1], days[1:-1], strict=False))  # in order, once each
    assert 1 in days[-1]  # … until the straggler brings it back
    summed: dict = {}
    for flush in flushes:
        for key, quantity in flush.items():
            summed[key] = summed.get(key, 0) + quantity
    assert summed[("acme,sg,email,delivered", dt.date(2026, 10, 1))] == 55
    assert sum(summed.values()) == 1005


def test_days_that_keep_getting_records_are_flushed_at_the_end(tmp_path, monkeypatch):
    lines = [f"2026-10-{1 + i % 10:02d},acme,sg,email,delivered,1\n" for i in range(1000)]
    flushes = flushes_of("".join(lines), tmp_path, monkeypatch)
    assert len(flushes) == 1
    assert sum(flushes[0].values()) == 1000


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_command_shows_progress_on_a_terminal(catalog, tmp_path):
    path = write(tmp_path, HEADER + "2026-10-05T10:00:00+08:00,acme,sg,email,delivered,1\n" * 70_000)
    out, err = io.StringIO(), Terminal()
    call_command("import_usage", str(path), stdout=out, stderr=err)
    shown = err.getvalue()
    assert re.search(rf"\r{re.escape(str(path))}: +[0-9]{{1,2}}%  65,536 records  [0-9,]+ records/s", shown)
    assert f"\r{path}: 100%  70,000 records  " in shown
    assert shown.endswith("\r\033[K")  # the progress line is cleared before the summary
    assert out.getvalue().startswith(f"{path}: imported 70,000 records into 1 daily usage rows")
    assert DailyUsage.objects.get().quantity == Decimal("70000")
    # Not on a terminal: no progress.
    err = io.StringIO()
    call_command("import_usage", str(path), stdout=io.StringIO(), stderr=err)
    assert err.getvalue() == ""

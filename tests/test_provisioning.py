"""Provisioning (interfaces.md, "Provisioning file"): the same file twice
changes nothing, and a malformed file is refused with the JSON path of each
problem and nothing stored."""
from __future__ import annotations

import copy
import json
import re

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

from accounts.models import Account, BillingInfo, BillingInfoChange, Membership, User
from aurora_billing.provisioning import ProvisionError, provision_apply
from payments.models import LedgerEntry
from usage.models import EmailPack, Price, Region

pytestmark = pytest.mark.django_db

APPS = ("accounts", "usage", "payments", "invoices", "aurora_billing", "auth")

DOCUMENT = {
    "regions": [{"code": "sg", "name": "Singapore"}, {"code": "hk", "name": "Hong Kong"}],
    "prices": [
        {"service": "email", "region": "sg", "unit_price": "0.000300", "currency": "USD",
         "effective_from": "2026-01-01"},
        {"service": "data_flow", "region": "hk", "unit_price": "0.32", "effective_from": "2026-01-01"},
    ],
    "accounts": [
        {
            "code": "acme", "name": "Acme Ltd", "currency": "USD",
            "users": [
                {"email": "Owner@Acme.Example", "password": "owner-pass-123", "role": "owner", "name": "Olivia"},
                {"email": "viewer@acme.example", "role": "viewer"},
            ],
            "packs": [{"reference": "pack-1", "region": "sg", "quantity": 100000,
                       "valid_from": "2026-09-01", "valid_until": "2028-09-01"}],
            "topups": [{"reference": "wire-001", "amount": "50.00", "at": "2026-09-01T00:00:00+08:00"}],
        },
        {
            "code": "xingchen", "name": "星辰科技有限公司",
            "users": [{"email": "owner@xingchen.example", "password": "xc-pass-1234", "role": "owner"},
                      {"email": "owner@acme.example", "password": "owner-pass-123", "role": "accountant"}],
            "billing_info": {"contact_name": "王芳", "company_name": "星辰科技有限公司",
                             "website": "https://xingchen.example", "company_address": "上海市浦东新区世纪大道100号",
                             "detailed_address": "环球金融中心 25 楼"},
        },
    ],
}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def doc(**changes) -> dict:
    return copy.deepcopy(DOCUMENT) | changes


def dump() -> dict[str, list[dict]]:
    """Every row of every project table (and auth's), in primary key order."""
    tables = {}
    for model in apps.get_models():
        if model._meta.app_label in APPS:
            tables[model._meta.label] = list(model.objects.order_by("pk").values())
    return tables


# --- idempotency -----------------------------------------------------------------


def test_provisioning_the_same_document_twice_changes_nothing():
    first = provision_apply(data=doc())
    assert first.created == {"regions": 2, "prices": 2, "accounts": 2, "users": 3, "memberships": 4,
                             "packs": 1, "topups": 1, "billing_info": 1}
    before = dump()
    second = provision_apply(data=doc())
    assert dump() == before
    assert second.created == {} and second.updated == {}
    assert second.unchanged == {"regions": 2, "prices": 2, "accounts": 2, "users": 4, "memberships": 4,
                                "packs": 1, "topups": 1, "billing_info": 1}


def test_the_command_twice_changes_nothing(tmp_path, capsys):
    path = tmp_path / "setup.json"
    path.write_text(json.dumps(doc(), ensure_ascii=False), encoding="utf-8")
    call_command("provision", str(path))
    assert "accounts: 2 created, 0 updated, 0 unchanged" in capsys.readouterr().out
    before = dump()
    call_command("provision", str(path))
    out = capsys.readouterr().out
    assert "accounts: 0 created, 0 updated, 2 unchanged" in out
    assert "created, 0 updated" in out and " 1 created" not in out
    assert dump() == before


def test_written_values_are_exact():
    provision_apply(data=doc())
    owner = User.objects.get(email="owner@acme.example")
    assert owner.check_password("owner-pass-123")
    assert not User.objects.get(email="viewer@acme.example").has_usable_password()
    assert set(Membership.objects.filter(user=owner).values_list("account__code", "role")) == {
        ("acme", "owner"), ("xingchen", "accountant")}
    assert str(Price.objects.get(service_id="email", region_id="sg").unit_price) == "0.000300"
    assert Price.objects.get(service_id="data_flow").currency == "USD"
    topup = LedgerEntry.objects.get(reference="wire-001")
    assert str(topup.amount) == "50.00"
    assert topup.at.isoformat() == "2026-08-31T16:00:00+00:00"
    info = BillingInfo.objects.get(account__code="xingchen")
    assert info.company_name == "星辰科技有限公司"
    assert BillingInfoChange.objects.filter(account__code="xingchen", source="provision").count() == 5


def test_a_changed_value_updates_in_place():
    provision_apply(data=doc())
    counts = {label: len(rows) for label, rows in dump().items()}
    changed = doc()
    changed["prices"][0]["unit_price"] = "0.000280"
    changed["accounts"][0]["name"] = "Acme Limited"
    changed["accounts"][0]["users"][1]["role"] = "accountant"
    changed["accounts"][1]["billing_info"]["detailed_address"] = "环球金融中心 26 楼"
    result = provision_apply(data=changed)
    assert result.updated == {"prices": 1, "accounts": 1, "memberships": 1, "billing_info": 1}
    assert {label: len(rows) for label, rows in dump().items()} == {
        **counts, "accounts.BillingInfoChange": counts["accounts.BillingInfoChange"] + 1}
    assert str(Price.objects.get(service_id="email").unit_price) == "0.000280"
    change = BillingInfoChange.objects.get(field="detailed_address", old_value="环球金融中心 25 楼")
    assert change.new_value == "环球金融中心 26 楼"


def test_a_booked_top_up_never_changes():
    provision_apply(data=doc())
    before = dump()
    changed = doc()
    changed["accounts"][0]["topups"][0]["amount"] = "60.00"
    with pytest.raises(ProvisionError) as info:
        provision_apply(data=changed)
    assert info.value.errors == [
        "accounts[0].topups[0]: top-up 'wire-001' is already booked as 50.00 at 2026-08-31T16:00:00+00:00; "
        "ledger entries never change"]
    assert dump() == before


# --- ingest tokens ---------------------------------------------------------------------


def token_doc(**changes) -> dict:
    return doc(ingest_tokens=[{"name": "delivery platform"}, {"name": "acme pipeline", "account": "acme"}],
               **changes)


def test_ingest_tokens_are_provisioned_once_and_shown_once(tmp_path, capsys):
    from usage.models import IngestToken
    from usage.selectors import ingest_token_find

    path = tmp_path / "setup.json"
    path.write_text(json.dumps(token_doc(), ensure_ascii=False), encoding="utf-8")
    call_command("provision", str(path))
    out = capsys.readouterr().out
    assert "ingest_tokens: 2 created, 0 updated, 0 unchanged" in out
    shown = dict(re.findall(r"^New ingest token '([^']+)' \(writes [^)]+\): (aur_ingest_\S+)$", out, re.M))
    assert set(shown) == {"delivery platform", "acme pipeline"}
    assert "writes every account" in out and "writes account acme only" in out
    platform, tenant = ingest_token_find(raw=shown["delivery platform"]), ingest_token_find(raw=shown["acme pipeline"])
    assert platform.account is None and tenant.account.code == "acme"
    assert all(raw not in str(row) for raw in shown.values() for row in IngestToken.objects.values())
    before = dump()
    call_command("provision", str(path))
    out = capsys.readouterr().out
    assert "ingest_tokens: 0 created, 0 updated, 2 unchanged" in out and "aur_ingest_" not in out
    assert dump() == before


def test_an_ingest_tokens_account_follows_the_file():
    from usage.models import IngestToken

    first = provision_apply(data=token_doc())
    assert [name for name, _, _ in first.tokens] == ["delivery platform", "acme pipeline"]
    moved = token_doc()
    moved["ingest_tokens"][1]["account"] = "xingchen"
    moved["ingest_tokens"][0]["account"] = "acme"
    result = provision_apply(data=moved)
    assert result.updated == {"ingest_tokens": 2} and result.tokens == []
    assert dict(IngestToken.objects.values_list("name", "account__code")) == {
        "delivery platform": "acme", "acme pipeline": "xingchen"}
    del moved["ingest_tokens"][0]["account"]  # no account: a platform token again
    assert provision_apply(data=moved).updated == {"ingest_tokens": 1}
    assert IngestToken.objects.get(name="delivery platform").account is None


def test_a_revoked_token_is_replaced_and_an_ambiguous_name_refused():
    from django.utils import timezone

    from usage.models import IngestToken
    from usage.services import ingest_token_create, ingest_token_revoke

    provision_apply(data=token_doc())
    old = IngestToken.objects.get(name="acme pipeline")
    ingest_token_revoke(token=old, revoked_by=None, now=timezone.now())
    result = provision_apply(data=token_doc())
    assert result.created == {"ingest_tokens": 1} and [t[0] for t in result.tokens] == ["acme pipeline"]
    assert IngestToken.objects.filter(name="acme pipeline", revoked_at__isnull=True).count() == 1
    ingest_token_create(name="delivery platform", created_by=None, now=timezone.now())  # made in admin
    before = dump()
    with pytest.raises(ProvisionError) as info:
        provision_apply(data=token_doc())
    assert info.value.errors == ["ingest_tokens[0].name: 2 active ingest tokens are named 'delivery platform'; "
                                 "revoke the extra ones in admin"]
    assert dump() == before


@pytest.mark.parametrize(("tokens", "errors"), [
    ([{"name": "x", "account": "nobody"}], ["ingest_tokens[0].account: unknown account 'nobody'"]),
    ([{"name": "x", "account": 3}], ["ingest_tokens[0].account: must be an account code (a string)"]),
    ([{"name": ""}], ["ingest_tokens[0].name: must be a non-empty string"]),
    ([{"name": "x"}, {"name": "x"}], ["ingest_tokens[1].name: duplicate ingest token name 'x'"]),
    ([{"name": "x", "scope": "all"}], ["ingest_tokens[0].scope: is not a known key"]),
    ({"name": "x"}, ["ingest_tokens: must be a list"]),
])
def test_bad_ingest_tokens_are_refused(tokens, errors):
    assert refused(doc(ingest_tokens=tokens)) == errors


def test_a_token_may_name_an_account_already_in_the_database():
    from usage.models import IngestToken

    provision_apply(data=doc())
    provision_apply(data={"ingest_tokens": [{"name": "xc", "account": "xingchen"}]})
    assert IngestToken.objects.get().account.code == "xingchen"


# --- malformed documents: one test per kind of fault ---------------------------------


def refused(document) -> list[str]:
    """Apply ``document`` over a provisioned database; assert nothing changed."""
    provision_apply(data=doc())
    before = dump()
    with pytest.raises(ProvisionError) as info:
        provision_apply(data=document)
    assert dump() == before
    return info.value.errors


def test_unknown_region_in_a_price():
    bad = doc()
    bad["prices"][1]["region"] = "mars"
    assert refused(bad) == ["prices[1].region: unknown region 'mars'"]


def test_unknown_region_in_a_pack():
    bad = doc()
    bad["accounts"][0]["packs"][0]["region"] = "eu-west"
    assert refused(bad) == ["accounts[0].packs[0].region: unknown region 'eu-west'"]


def test_region_that_is_not_a_string():
    bad = doc()
    bad["accounts"][0]["packs"][0]["region"] = ["sg"]
    bad["prices"][0]["region"] = {"code": "sg"}
    assert refused(bad) == ["prices[0].region: must be a region code (a string)",
                            "accounts[0].packs[0].region: must be a region code (a string)"]


def test_negative_quantity():
    bad = doc()
    bad["accounts"][0]["packs"][0]["quantity"] = -5
    assert refused(bad) == ["accounts[0].packs[0].quantity: must be a whole number ≥ 0"]


def test_fractional_or_huge_quantity():
    bad = doc()
    bad["accounts"][0]["packs"][0]["quantity"] = 1.5
    assert refused(bad) == ["accounts[0].packs[0].quantity: must be a whole number ≥ 0"]
    bad["accounts"][0]["packs"][0]["quantity"] = 10**20
    assert refused(bad) == ["accounts[0].packs[0].quantity: must be at most 1000000000000"]


def test_negative_price_and_amount():
    bad = doc()
    bad["prices"][0]["unit_price"] = "-0.0003"
    bad["accounts"][0]["topups"][0]["amount"] = "-5.00"
    assert refused(bad) == ["prices[0].unit_price: must be ≥ 0", "accounts[0].topups[0].amount: must be ≥ 0"]


PLAIN_WHOLE = "is not a whole number in plain digits 0-9 (no sign, spaces, exponent or separators)"


def plain_decimal(places: int) -> str:
    return (f"is not a plain decimal: digits 0-9, and at most {places} decimals after a '.' "
            "(no sign, spaces, exponent or separators)")


@pytest.mark.parametrize(("text", "price_reason", "amount_reason"), [
    ("1e3", f"'1e3' {plain_decimal(6)}", f"'1e3' {plain_decimal(2)}"),
    ("\uff11\uff10", f"'\uff11\uff10' {plain_decimal(6)}", f"'\uff11\uff10' {plain_decimal(2)}"),
    ("\u0663", f"'\u0663' {plain_decimal(6)}", f"'\u0663' {plain_decimal(2)}"),
    ("1_000", f"'1_000' {plain_decimal(6)}", f"'1_000' {plain_decimal(2)}"),
    (" 5 ", f"' 5 ' {plain_decimal(6)}", f"' 5 ' {plain_decimal(2)}"),
    ("+7", f"'+7' {plain_decimal(6)}", f"'+7' {plain_decimal(2)}"),
    ("-0", f"'-0' {plain_decimal(6)}", f"'-0' {plain_decimal(2)}"),
    ("007", "'007' has a leading zero", "'007' has a leading zero"),
    (".5", f"'.5' {plain_decimal(6)}", f"'.5' {plain_decimal(2)}"),
    ("5.", f"'5.' {plain_decimal(6)}", f"'5.' {plain_decimal(2)}"),
    ("0.1234567", "'0.1234567' has more than 6 decimal places", "'0.1234567' has more than 2 decimal places"),
])
def test_lax_prices_and_amounts_are_refused(text, price_reason, amount_reason):
    bad = doc()
    bad["prices"][0]["unit_price"] = text
    bad["accounts"][0]["topups"][0]["amount"] = text
    assert refused(bad) == [f"prices[0].unit_price: {price_reason}", f"accounts[0].topups[0].amount: {amount_reason}"]


@pytest.mark.parametrize(("quantity", "reason"), [
    ("1e3", f"'1e3' {PLAIN_WHOLE}"),
    ("\uff11\uff10", f"'\uff11\uff10' {PLAIN_WHOLE}"),
    ("\u0663", f"'\u0663' {PLAIN_WHOLE}"),
    ("1_000", f"'1_000' {PLAIN_WHOLE}"),
    (" 5 ", f"' 5 ' {PLAIN_WHOLE}"),
    ("+7", f"'+7' {PLAIN_WHOLE}"),
    ("-0", f"'-0' {PLAIN_WHOLE}"),
    ("007", "'007' has a leading zero"),
    ("100.0", "must be a whole number, got '100.0'"),
    (True, "must be a whole number ≥ 0"),
    (1e3, "must be a whole number ≥ 0"),
])
def test_lax_pack_quantities_are_refused(quantity, reason):
    bad = doc()
    bad["accounts"][0]["packs"][0]["quantity"] = quantity
    assert refused(bad) == [f"accounts[0].packs[0].quantity: {reason}"]


def test_plain_prices_amounts_and_quantities_are_accepted():
    good = doc()
    good["prices"][0]["unit_price"] = "0"
    good["prices"][1]["unit_price"] = "12.5"
    good["accounts"][0]["topups"][0]["amount"] = "7"
    good["accounts"][0]["packs"][0]["quantity"] = "0"
    provision_apply(data=good)
    assert sorted(str(p) for p in Price.objects.values_list("unit_price", flat=True)) == ["0.000000", "12.500000"]
    assert str(LedgerEntry.objects.get().amount) == "7.00"
    assert EmailPack.objects.get().quantity == 0


def test_command_refuses_a_json_minus_zero(tmp_path):
    """``-0`` in the file is kept as written, so the grammar refuses it too."""
    path = tmp_path / "setup.json"
    path.write_text(json.dumps(doc()).replace('"quantity": 100000', '"quantity": -0'), encoding="utf-8")
    with pytest.raises(CommandError) as info:
        call_command("provision", str(path))
    assert "accounts[0].packs[0].quantity: must be a whole number ≥ 0" in str(info.value)
    assert not Account.objects.exists()


def test_amounts_too_large_for_their_columns():
    bad = doc()
    bad["prices"][0]["unit_price"] = "1000000000000"
    bad["accounts"][0]["topups"][0]["amount"] = "1000000000000.00"
    assert refused(bad) == ["prices[0].unit_price: must be less than 1000000000000",
                            "accounts[0].topups[0].amount: must be less than 1000000000000"]


def test_bad_date():
    bad = doc()
    bad["prices"][0]["effective_from"] = "2026-02-30"
    bad["accounts"][0]["packs"][0]["valid_until"] = "next year"
    assert refused(bad) == [
        "prices[0].effective_from: '2026-02-30' is not a real date",
        "accounts[0].packs[0].valid_until: 'next year' is not a date; expected YYYY-MM-DD",
    ]


def test_bad_instant():
    bad = doc()
    bad["accounts"][0]["topups"][0]["at"] = "2026-09-01T00:00:00"
    assert refused(bad) == ["accounts[0].topups[0].at: must carry a UTC offset, e.g. +08:00"]


def test_pack_that_ends_before_it_starts():
    bad = doc()
    bad["accounts"][0]["packs"][0]["valid_until"] = "2026-09-01"
    assert refused(bad) == ["accounts[0].packs[0].valid_until: must be after valid_from"]


def test_duplicate_region_code():
    bad = doc()
    bad["regions"].append({"code": "sg", "name": "Singapore again"})
    assert refused(bad) == ["regions[2].code: duplicate region code 'sg'"]


def test_duplicate_account_code():
    bad = doc()
    bad["accounts"][1]["code"] = "acme"
    assert refused(bad) == ["accounts[1].code: duplicate account code 'acme'"]


def test_duplicate_pack_and_top_up_references():
    bad = doc()
    bad["accounts"][0]["packs"].append(dict(bad["accounts"][0]["packs"][0]))
    bad["accounts"][0]["topups"].append(dict(bad["accounts"][0]["topups"][0]))
    assert refused(bad) == ["accounts[0].packs[1].reference: duplicate pack reference 'pack-1'",
                            "accounts[0].topups[1].reference: duplicate top-up reference 'wire-001'"]


def test_duplicate_user_in_an_account():
    bad = doc()
    bad["accounts"][0]["users"].append({"email": "OWNER@acme.example", "role": "viewer"})
    assert refused(bad) == ["accounts[0].users[2].email: duplicate user 'owner@acme.example' in this account"]


def test_duplicate_price():
    bad = doc()
    bad["prices"].append(dict(bad["prices"][0], unit_price="0.1"))
    assert refused(bad) == ["prices[2]: duplicate price for email/sg USD from 2026-01-01"]


def test_wrong_role():
    bad = doc()
    bad["accounts"][0]["users"][1]["role"] = "admin"
    assert refused(bad) == ["accounts[0].users[1].role: unknown role 'admin'; expected owner, accountant or viewer"]


def test_missing_key():
    bad = doc()
    del bad["accounts"][1]["code"]
    del bad["regions"][0]["name"]
    del bad["accounts"][0]["packs"][0]["valid_from"]
    assert refused(bad) == ["regions[0].name: is required", "accounts[0].packs[0].valid_from: is required",
                            "accounts[1].code: is required"]


def test_unknown_key():
    bad = doc()
    bad["accounts"][0]["owner"] = "someone"
    bad["regoins"] = []
    assert refused(bad) == ["regoins: is not a known key"]  # the document level is checked first
    del bad["regoins"]
    assert refused(bad) == ["accounts[0].owner: is not a known key"]


def test_document_that_is_not_an_object():
    assert refused([1, 2]) == ["(document): must be an object"]


def test_wrong_types():
    bad = doc()
    bad["accounts"][0]["users"][0]["staff"] = "false"
    bad["accounts"][0]["users"][0]["name"] = {"first": "Olivia"}
    bad["accounts"][0]["packs"] = {"reference": "pack-1"}
    assert refused(bad) == ["accounts[0].users[0].name: must be a string",
                            "accounts[0].users[0].staff: must be true or false",
                            "accounts[0].packs: must be a list"]


def test_text_longer_than_its_column():
    bad = doc()
    bad["accounts"][1]["billing_info"]["contact_name"] = "王" * 101
    bad["accounts"][0]["users"][0]["name"] = "x" * 151
    bad["regions"][0]["name"] = "S" * 101
    assert refused(bad) == ["regions[0].name: must be at most 100 characters",
                            "accounts[0].users[0].name: must be at most 150 characters",
                            "accounts[1].billing_info.contact_name: must be at most 100 characters"]


def test_bad_billing_info_website_and_email():
    bad = doc()
    bad["accounts"][1]["billing_info"]["website"] = "javascript:alert(1)"
    bad["accounts"][0]["users"][0]["email"] = "not-an-email"
    assert refused(bad) == ["accounts[0].users[0].email: must be an email address",
                            "accounts[1].billing_info.website: must be an http(s) URL"]


def test_every_problem_is_reported_at_once():
    bad = doc()
    bad["prices"][0]["region"] = "mars"
    bad["accounts"][0]["packs"][0]["quantity"] = -1
    bad["accounts"][0]["users"][1]["role"] = "boss"
    assert len(refused(bad)) == 3


def test_nothing_is_stored_on_an_empty_database():
    bad = doc()
    bad["accounts"][1]["users"][0]["role"] = "root"
    empty = dump()
    with pytest.raises(ProvisionError):
        provision_apply(data=bad)
    assert dump() == empty
    assert not Account.objects.exists() and not Region.objects.exists() and not EmailPack.objects.exists()


# --- the command's own errors ---------------------------------------------------------


def test_command_reports_the_path_and_writes_nothing(tmp_path):
    bad = doc()
    bad["accounts"][0]["packs"][0]["quantity"] = -1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(CommandError) as info:
        call_command("provision", str(path))
    message = str(info.value)
    assert "1 problem, nothing was written" in message
    assert "accounts[0].packs[0].quantity: must be a whole number ≥ 0" in message
    assert not Account.objects.exists()


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file"),
    (b"{not json", "not valid JSON (line 1, column 2"),
    (b"\xff\xfe{}", "not UTF-8 text"),
])
def test_command_refuses_unreadable_files(tmp_path, content, expected):
    path = tmp_path / "setup.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CommandError, match=re.escape(expected)):
        call_command("provision", str(path))


def test_command_refuses_a_directory(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("provision", str(tmp_path))


def test_currencies_not_kept_in_cents_are_refused():
    """core.money.currency_check: amounts are cents, so JPY (0 places) and KWD (3) cannot be billed."""
    bad = doc()
    bad["prices"][0]["currency"] = "JPY"
    bad["accounts"][0]["currency"] = "KWD"
    errors = refused(bad)
    assert any(e.startswith("prices[0].currency: currency JPY has 0 decimal places") for e in errors)
    assert any(e.startswith("accounts[0].currency: currency KWD has 3 decimal places") for e in errors)

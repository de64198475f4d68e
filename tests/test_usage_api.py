"""``POST /api/usage/``: bearer ingest tokens, limits, Idempotency-Key
replay, per-record errors with nothing stored; tokens in admin."""
from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Account, User
from tests.support import add_usage, failures, run_concurrently
from usage.api import MAX_BODY_BYTES, MAX_RECORDS
from usage.models import DailyUsage, ImportOrigin, IngestToken, Region, UsageImport
from usage.selectors import token_digest
from usage.services import ingest_token_create, ingest_token_revoke

URL = "/api/usage/"


def record(**overrides) -> dict:
    return {"occurred_at": "2026-10-05T09:30:00+08:00", "account": "acme", "region": "sg", "service": "email",
            "result": "delivered", "quantity": 8000, **overrides}


@pytest.fixture
def acme(db):
    Region.objects.create(code="sg", name="Singapore")
    return Account.objects.create(code="acme", name="Acme Ltd")


@pytest.fixture
def token(acme):
    return ingest_token_create(name="platform", created_by=None, now=timezone.now())


@pytest.fixture
def api(client, token):
    def post(body, *, key: str | None = "key-1", bearer: str | None = None, raw: bool = False, **headers):
        if bearer is None:
            bearer = f"Bearer {token[1]}"
        if bearer:
            headers["HTTP_AUTHORIZATION"] = bearer
        if key is not None:
            headers["HTTP_IDEMPOTENCY_KEY"] = key
        data = body if raw else json.dumps(body)
        return client.post(URL, data=data, content_type="application/json", **headers)
    return post


def error(code: str, message: str, details=None) -> dict:
    body = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def test_records_are_imported_and_answered_201(api, acme, token):
    response = api({"records": [record(), record(quantity="12"), record(service="data_flow", result="",
                                                                         quantity="20.5")]})
    batch = UsageImport.objects.get()
    assert response.status_code == 201
    assert response.json() == {"import": batch.pk, "records": 3, "daily_rows": 2, "late_rows": 0,
                               "late_periods": []}
    assert "Idempotent-Replayed" not in response
    assert sorted(DailyUsage.objects.values_list("service_id", "quantity")) == [
        ("data_flow", Decimal("20.5")), ("email", Decimal("8012"))]
    assert (batch.origin, batch.token, batch.idempotency_key) == (ImportOrigin.API, token[0], "key-1")
    token[0].refresh_from_db()
    assert token[0].last_used_at is not None


def test_json_numbers_are_read_exactly(api, acme):
    body = '{"records": [{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", ' \
           '"service": "data_flow", "result": null, "quantity": 0.1}, {"occurred_at": "2026-10-05", ' \
           '"account": "acme", "region": "sg", "service": "data_flow", "quantity": 0.2}]}'
    assert api(body, raw=True).status_code == 201
    assert DailyUsage.objects.get().quantity == Decimal("0.3")


@pytest.mark.parametrize("bearer", ["", "Bearer", "Bearer ", "Basic abc", "Bearer aur_ingest_wrong", "Token {raw}"])
def test_missing_or_unknown_token_is_401(api, token, bearer):
    response = api({"records": [record()]}, bearer=bearer.format(raw=token[1]) or False)
    assert response.status_code == 401
    assert response.json() == error("unauthorized", "A valid ingest token is required: Authorization: Bearer <token>.")
    assert response["WWW-Authenticate"] == 'Bearer realm="usage"'
    assert not DailyUsage.objects.exists()


def test_revoked_token_is_401(api, token):
    assert ingest_token_revoke(token=token[0], revoked_by=None, now=timezone.now())
    assert not ingest_token_revoke(token=token[0], revoked_by=None, now=timezone.now())
    response = api({"records": [record()]})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert not DailyUsage.objects.exists()


def test_only_the_tokens_hash_is_stored(token):
    stored, raw = token
    assert raw.startswith("aur_ingest_") and len(raw) > 50
    assert stored.token_sha256 == token_digest(raw)
    assert stored.prefix == raw[:16]
    assert all(raw not in str(value) for value in IngestToken.objects.values().get().values())


def test_replay_returns_the_first_answer_and_stores_nothing_more(api, acme):
    first = api({"records": [record()]})
    assert first.status_code == 201
    # Same records, other key order and spacing: the same request.
    replay = api(json.dumps({"records": [dict(reversed(list(record().items())))]}, indent=2), raw=True)
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay["Idempotent-Replayed"] == "true"
    assert UsageImport.objects.count() == 1
    assert DailyUsage.objects.get().quantity == Decimal("8000")
    other = api({"records": [record()]}, key="key-2")
    assert other.status_code == 201 and "Idempotent-Replayed" not in other
    assert DailyUsage.objects.get().quantity == Decimal("16000")


def test_same_key_with_other_records_is_422(api, acme):
    first = api({"records": [record()]})
    response = api({"records": [record(quantity=1)]})
    assert response.status_code == 422
    assert response.json() == error(
        "idempotency_key_reused",
        f"this Idempotency-Key was used by import #{first.json()['import']} for different records.")
    assert DailyUsage.objects.get().quantity == Decimal("8000")


def test_bad_records_are_400_with_each_index_and_nothing_is_stored(api, acme):
    records = [record(), record(account="nobody"), record(), record(result="bounced", quantity="1.5"),
               "oops", record(occurred_at="2026-10-05T09:30:00")]
    response = api({"records": records})
    assert response.status_code == 400
    results = "one of delivered, soft_bounce, format_error, not_exist, reject, junk_mail"
    assert response.json() == error("invalid_records", "4 bad records; nothing was stored.", [
        {"index": 1, "reason": "unknown account 'nobody'"},
        {"index": 3, "reason": f"unknown email result 'bounced' ({results}); "
                               "email quantity must be a whole number, got '1.5'"},
        {"index": 4, "reason": "expected a JSON object with the keys occurred_at, account, region, service, "
                               "result, quantity"},
        {"index": 5, "reason": "occurred_at '2026-10-05T09:30:00' has no UTC offset (add Z or +08:00)"},
    ])
    assert not DailyUsage.objects.exists() and not UsageImport.objects.exists()
    # The key was not used up: the corrected request goes through with it.
    assert api({"records": [record()]}).status_code == 201


def test_every_bad_record_is_listed(api, acme):
    response = api({"records": [record(region="mars")] * 500})
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert [d["index"] for d in details] == list(range(500))


def test_usage_for_a_settled_period_is_accepted_and_marked_late(api, acme):
    row = add_usage(acme, "sg", "email", "2026-09-10", "10")
    DailyUsage.objects.filter(pk=row.pk).update(billed_quantity=10)
    response = api({"records": [record(occurred_at="2026-09-20", quantity=5), record()]})
    assert response.status_code == 201
    assert response.json()["late_rows"] == 1
    assert response.json()["late_periods"] == [{"account": "acme", "period": "2026-09"}]


def test_ten_thousand_records_are_accepted_and_one_more_is_413(api, acme):
    assert api({"records": [record(quantity=1)] * MAX_RECORDS}).status_code == 201
    assert DailyUsage.objects.get().quantity == Decimal(MAX_RECORDS)
    response = api({"records": [record(quantity=1)] * (MAX_RECORDS + 1)}, key="key-2")
    assert response.status_code == 413
    assert response.json() == error("too_many_records", "More than 10,000 records; at most 10,000 per request.")
    assert UsageImport.objects.count() == 1


def test_more_than_ten_thousand_records_are_refused_while_parsing(api, acme):
    """Reading stops at record 10,001: what follows it is never parsed, so
    a body that is malformed after that point is still 413, not 400."""
    one = json.dumps(record(quantity=1))
    body = '{"records": [' + ",".join([one] * (MAX_RECORDS + 1)) + ", {not json at all"
    response = api(body, raw=True)
    assert response.status_code == 413
    assert response.json() == error("too_many_records", "More than 10,000 records; at most 10,000 per request.")
    # Any key order; other keys are read and ignored, as before.
    body = '{"note": [1, {"a": null}], "records": [' + ",".join([one] * (MAX_RECORDS + 1)) + "], junk"
    assert api(body, raw=True, key="key-2").status_code == 413
    assert not UsageImport.objects.exists()


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,
    '{"records": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"records": [' + "[" * 100_000,
    '{"records": [{"quantity": ' + "{\"a\": " * 50_000 + "1" + "}" * 50_000 + "}]}",
    '{"records": [], "x": ' + "[" * 40 + "]" * 40 + "}",
    '{"records": [' + "[" * 31 + "]" * 31 + "]}",
])
def test_deeply_nested_body_is_400(api, acme, body):
    response = api(body, raw=True)
    assert response.status_code == 400
    assert response.json() == error("too_deep", "The body nests JSON deeper than 32 levels.")
    assert not UsageImport.objects.exists()


def test_nesting_within_the_limit_is_an_ordinary_bad_record(api, acme):
    body = '{"records": [' + "[" * 30 + "]" * 30 + "]}"  # 32 levels with the body's own two
    response = api(body, raw=True)
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [{"index": 0, "reason": "expected a JSON object with the keys "
                                                    "occurred_at, account, region, service, result, quantity"}]


def test_oversized_body_is_413(api, acme):
    body = json.dumps({"records": [record()], "padding": "x" * MAX_BODY_BYTES})
    response = api(body, raw=True)
    assert response.status_code == 413
    assert response.json() == error("body_too_large", f"The body exceeds {MAX_BODY_BYTES:,} bytes.")
    assert not UsageImport.objects.exists()


@pytest.mark.parametrize(("body", "code", "message"), [
    ("{", "invalid_json", "The body is not valid JSON: Expecting property name enclosed in double quotes: "
                          "line 1 column 2 (char 1)"),
    ('{"records": [{"quantity": NaN}]}', "invalid_json", "The body is not valid JSON: NaN is not allowed"),
    (b'{"records": ["\xff"]}', "invalid_json", "The body is not valid JSON: 'utf-8' codec can't decode byte 0xff "
                                               "in position 14: invalid start byte"),
    ("[]", "invalid_body", 'The body must be {"records": [ … ]} with at least one record.'),
    ('{"records": []}', "invalid_body", 'The body must be {"records": [ … ]} with at least one record.'),
    ('{"records": {"a": 1}}', "invalid_body", 'The body must be {"records": [ … ]} with at least one record.'),
])
def test_malformed_body_is_400(api, acme, body, code, message):
    response = api(body, raw=True)
    assert response.status_code == 400
    assert response.json() == error(code, message)


@pytest.mark.parametrize(("body", "message"), [
    ('{"records": [1]} x', "Extra data: line 1 column 18 (char 17)"),
    ('{"records": [1,]}', "Expecting value: line 1 column 16 (char 15)"),
    ('{"records": [1 2]}', "Expecting ',' delimiter: line 1 column 16 (char 15)"),
    ('{"records" [1]}', "Expecting ':' delimiter: line 1 column 12 (char 11)"),
    ('{"records": [1], }', "Expecting property name enclosed in double quotes: line 1 column 18 (char 17)"),
    ("", "Expecting value: line 1 column 1 (char 0)"),
])
def test_unparsable_body_is_400_in_the_error_shape(api, acme, body, message):
    response = api(body, raw=True)
    assert response.status_code == 400
    assert response.json() == error("invalid_json", f"The body is not valid JSON: {message}")


@pytest.mark.parametrize(("quantity", "service", "reason"), [
    ('"1e3"', "email", "quantity '1e3' is not a whole number in plain digits 0-9 (no sign, spaces, exponent or "
                       "separators)"),
    ('"\uff11\uff10"', "email", "quantity '\uff11\uff10' is not a whole number in plain digits 0-9 (no sign, "
                                  "spaces, exponent or separators)"),
    ('"\u0663"', "email", "quantity '\u0663' is not a whole number in plain digits 0-9 (no sign, spaces, exponent "
                           "or separators)"),
    ('"1_000"', "email", "quantity '1_000' is not a whole number in plain digits 0-9 (no sign, spaces, exponent or "
                         "separators)"),
    ('" 5 "', "email", "quantity ' 5 ' is not a whole number in plain digits 0-9 (no sign, spaces, exponent or "
                       "separators)"),
    ('"+7"', "email", "quantity '+7' is not a whole number in plain digits 0-9 (no sign, spaces, exponent or "
                      "separators)"),
    ('"-0"', "email", "quantity '-0' is not a whole number in plain digits 0-9 (no sign, spaces, exponent or "
                      "separators)"),
    ('"007"', "email", "quantity '007' has a leading zero"),
    ("1e3", "email", "quantity '1e3' is not a whole number in plain digits 0-9 (no sign, spaces, exponent or "
                     "separators)"),
    ("-0", "email", "quantity '-0' is not a whole number in plain digits 0-9 (no sign, spaces, exponent or "
                    "separators)"),
    ("5.0", "email", "email quantity must be a whole number, got '5.0'"),
    ("true", "email", "quantity must be a string, got true"),
    ("false", "data_flow", "quantity must be a string, got false"),
    ("1e3", "data_flow", "quantity '1e3' is not a plain decimal: digits 0-9, and at most 6 decimals after a '.' "
                         "(no sign, spaces, exponent or separators)"),
    ("1.5E0", "data_flow", "quantity '1.5E0' is not a plain decimal: digits 0-9, and at most 6 decimals after a "
                           "'.' (no sign, spaces, exponent or separators)"),
    ('"01.5"', "data_flow", "quantity '01.5' has a leading zero"),
])
def test_lax_quantities_are_400_with_their_index(api, acme, quantity, service, reason):
    result = '"delivered"' if service == "email" else '""'
    good = json.dumps(record())
    bad = (f'{{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "{service}", '
           f'"result": {result}, "quantity": {quantity}}}')
    response = api(f'{{"records": [{good}, {bad}]}}', raw=True)
    assert response.status_code == 400
    assert response.json() == error("invalid_records", "1 bad record; nothing was stored.",
                                    [{"index": 1, "reason": reason}])
    assert not DailyUsage.objects.exists() and not UsageImport.objects.exists()


def test_json_decimals_for_data_flow_are_accepted_as_written(api, acme):
    body = ('{"records": [{"occurred_at": "2026-10-05", "account": "acme", "region": "sg", "service": "data_flow", '
            '"quantity": 1.5}, {"occurred_at": "2026-10-05", "account": "acme", "region": "sg", '
            '"service": "data_flow", "quantity": 123.456789}, {"occurred_at": "2026-10-05", "account": "acme", '
            '"region": "sg", "service": "data_flow", "quantity": 0}]}')
    assert api(body, raw=True).status_code == 201
    assert DailyUsage.objects.get().quantity == Decimal("124.956789")


@pytest.mark.parametrize(("key", "code"), [
    (None, "idempotency_key_required"),
    ("", "idempotency_key_required"),
    ("has space", "invalid_idempotency_key"),
    ("k" * 201, "invalid_idempotency_key"),
])
def test_idempotency_key_is_required(api, acme, key, code):
    response = api({"records": [record()]}, key=key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not DailyUsage.objects.exists()


def test_only_post(client, token):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token[1]}")
    assert response.status_code == 405
    assert response.json() == error("method_not_allowed", "Use POST.")
    assert response["Allow"] == "POST"


def test_no_csrf_token_is_needed(acme, token):
    client = Client(enforce_csrf_checks=True)
    response = client.post(URL, data=json.dumps({"records": [record()]}), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token[1]}", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 201


# --- token scope and idempotency per token -------------------------------------------


@pytest.fixture
def beta(acme):
    return Account.objects.create(code="beta", name="Beta")


def post_with(raw: str, body: dict, key: str = "key-1"):
    return Client().post(URL, data=json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_IDEMPOTENCY_KEY=key)


def test_a_tenant_token_writes_only_its_account(acme, beta):
    tenant, raw = ingest_token_create(name="acme pipeline", account=acme, created_by=None, now=timezone.now())
    assert tenant.account == acme
    response = post_with(raw, {"records": [record(), record(account="beta"), record(account="nobody"),
                                           record(account="beta", quantity="x")]})
    assert response.status_code == 400
    other = "account 'beta' is not 'acme', the only account this token writes"
    assert response.json() == error("invalid_records", "3 bad records; nothing was stored.", [
        {"index": 1, "reason": other},
        # An unknown account reads the same: a tenant token learns no other account's code.
        {"index": 2, "reason": "account 'nobody' is not 'acme', the only account this token writes"},
        {"index": 3, "reason": other + "; quantity 'x' is not a whole number in plain digits 0-9 (no sign, "
                                       "spaces, exponent or separators)"},
    ])
    assert not DailyUsage.objects.exists() and not UsageImport.objects.exists()
    assert post_with(raw, {"records": [record(), record(quantity=2)]}).status_code == 201
    assert list(DailyUsage.objects.values_list("account__code", "quantity")) == [("acme", Decimal("8002"))]


def test_a_platform_token_writes_every_account(acme, beta, token):
    stored, raw = token
    assert stored.account is None
    assert post_with(raw, {"records": [record(), record(account="beta")]}).status_code == 201
    assert sorted(DailyUsage.objects.values_list("account__code", flat=True)) == ["acme", "beta"]
    response = post_with(raw, {"records": [record(account="nobody")]}, key="key-2")
    assert response.json()["error"]["details"] == [{"index": 0, "reason": "unknown account 'nobody'"}]


def test_idempotency_keys_are_scoped_to_the_token(acme, beta, token):
    tenant, tenant_raw = ingest_token_create(name="beta pipeline", account=beta, created_by=None,
                                             now=timezone.now())
    first = post_with(token[1], {"records": [record(quantity=5)]}, key="same")
    # Another token with the same key: its own import and its own answer, not a replay of the first.
    second = post_with(tenant_raw, {"records": [record(account="beta", quantity=7)]}, key="same")
    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second
    assert first.json()["import"] != second.json()["import"]
    # … and the same records as the first token's, with the key: still not the first token's answer.
    third = post_with(tenant_raw, {"records": [record(quantity=5)]}, key="same")
    assert third.status_code == 422  # the tenant's own key, used by the tenant for other records
    # Each token's replay is its own.
    again = post_with(token[1], {"records": [record(quantity=5)]}, key="same")
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"
    again = post_with(tenant_raw, {"records": [record(account="beta", quantity=7)]}, key="same")
    assert again.content == second.content and again["Idempotent-Replayed"] == "true"
    assert sorted(UsageImport.objects.values_list("token__name", "idempotency_key")) == [
        ("beta pipeline", "same"), ("platform", "same")]
    assert sorted(DailyUsage.objects.values_list("account__code", "quantity")) == [
        ("acme", Decimal("5")), ("beta", Decimal("7"))]


def test_two_platform_tokens_with_one_key_import_independently(acme, token):
    other, other_raw = ingest_token_create(name="platform hk", created_by=None, now=timezone.now())
    first = post_with(token[1], {"records": [record(quantity=5)]}, key="same")
    second = post_with(other_raw, {"records": [record(quantity=5)]}, key="same")
    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second and first.json()["import"] != second.json()["import"]
    assert DailyUsage.objects.get().quantity == Decimal("10")
    # Other records under the other token's key are that token's affair: 422 only for a reuse by the same token.
    assert post_with(other_raw, {"records": [record(quantity=6)]}, key="same").status_code == 422


@pytest.mark.django_db(transaction=True)
def test_tokens_made_before_scoping_are_platform_tokens_after_the_migration():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("usage", "0007_unbilled_partial_index")], [("usage", "0008_ingest_token_scope")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    old.get_model("usage", "Region").objects.create(code="sg", name="Singapore")
    for code in ("acme", "beta"):
        old.get_model("accounts", "Account").objects.create(code=code, name=code)
    raw = "aur_ingest_made-before-scoping"
    old_token = old.get_model("usage", "IngestToken").objects.create(
        name="old", prefix=raw[:16], token_sha256=token_digest(raw), created_at=timezone.now())
    old.get_model("usage", "UsageImport").objects.create(
        origin="api", name="POST /api/usage/", format="json", content_sha256="0" * 64, idempotency_key="k",
        token=old_token, method="simple", response='{"import": 1}', imported_at=timezone.now())
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert IngestToken.objects.get().account is None
    response = post_with(raw, {"records": [record(), record(account="beta")]}, key="k2")
    assert response.status_code == 201
    # The key it used before the migration is still its own.
    assert post_with(raw, {"records": [record()]}, key="k").status_code == 422


# --- admin -------------------------------------------------------------------------


@pytest.fixture
def staff_client(db):
    client = Client()
    client.force_login(User.objects.create_superuser("admin@aurora.example", "x-pass-123456"))
    return client


def test_staff_create_a_token_in_admin_and_see_it_once(staff_client, acme):
    response = staff_client.post("/admin/usage/ingesttoken/add/", {"name": "platform sg"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = re.search(r'value="(aur_ingest_[^"]+)"', html).group(1)
    assert "Copy the token now: it is not stored and will not be shown again." in html
    assert "It writes usage for every account." in html
    stored = IngestToken.objects.get()
    assert (stored.name, stored.token_sha256, stored.created_by.email) == (
        "platform sg", token_digest(raw), "admin@aurora.example")
    # The token works, and no later page shows it.
    client = Client()
    response = client.post(URL, data=json.dumps({"records": [record()]}), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 201
    for page in ("/admin/usage/ingesttoken/", f"/admin/usage/ingesttoken/{stored.pk}/change/"):
        page_response = staff_client.get(page)
        assert page_response.status_code == 200
        assert raw not in page_response.content.decode()
    # Revoked by an admin action: the token answers 401 from then on.
    response = staff_client.post("/admin/usage/ingesttoken/", {
        "action": "revoke", "_selected_action": [stored.pk]}, follow=True)
    assert "1 ingest token(s) revoked" in response.content.decode()
    stored.refresh_from_db()
    assert stored.revoked_at is not None and stored.revoked_by.email == "admin@aurora.example"
    response = client.post(URL, data=json.dumps({"records": [record()]}), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_IDEMPOTENCY_KEY="k2")
    assert response.status_code == 401


def test_staff_create_a_tenant_token_in_admin_and_change_its_account(staff_client, acme):
    beta = Account.objects.create(code="beta", name="Beta")
    response = staff_client.post("/admin/usage/ingesttoken/add/", {"name": "acme pipeline", "account": acme.pk})
    assert response.status_code == 200
    html = response.content.decode()
    raw = re.search(r'value="(aur_ingest_[^"]+)"', html).group(1)
    assert "It writes usage for account acme only." in html
    stored = IngestToken.objects.get()
    assert stored.account == acme
    assert post_with(raw, {"records": [record(account="beta")]}).status_code == 400
    listing = staff_client.get("/admin/usage/ingesttoken/").content.decode()
    assert "acme" in listing
    response = staff_client.post(f"/admin/usage/ingesttoken/{stored.pk}/change/", {"account": beta.pk})
    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.account == beta and stored.name == "acme pipeline"
    assert post_with(raw, {"records": [record(account="beta")]}, key="k2").status_code == 201
    # Emptied: a platform token.
    staff_client.post(f"/admin/usage/ingesttoken/{stored.pk}/change/", {"account": ""})
    stored.refresh_from_db()
    assert stored.account is None
    assert post_with(raw, {"records": [record()]}, key="k3").status_code == 201


def test_import_log_is_visible_in_admin(staff_client, api, acme):
    api({"records": [record(), record(service="data_flow", result="", quantity="1.25")]})
    batch = UsageImport.objects.get()
    page = staff_client.get(f"/admin/usage/usageimport/{batch.pk}/change/").content.decode()
    assert "POST /api/usage/" in page and "key-1" in page
    assert "<td>email</td><td>sg</td><td style='text-align:right'>8000</td><td>1</td>" in page
    assert "<td>data_flow</td><td>sg</td><td style='text-align:right'>1.25</td><td>1</td>" in page
    lines = staff_client.get(f"/admin/usage/usageimportline/?usage_import__id__exact={batch.pk}")
    assert lines.status_code == 200
    assert staff_client.get("/admin/usage/dailyusage/").status_code == 200


# --- PostgreSQL: the same key at the same time -------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_import_once(postgres, acme, token):
    def send():
        response = Client().post(URL, data=json.dumps({"records": [record()] * 2000}), content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Bearer {token[1]}", HTTP_IDEMPOTENCY_KEY="same")
        return response.status_code, response.json(), response.get("Idempotent-Replayed")

    answers = run_concurrently(send, send, send)
    assert not failures(answers), failures(answers)
    assert sorted(a[2] or "" for a in answers) == ["", "true", "true"]
    assert [a[0] for a in answers] == [201, 201, 201]
    assert len({json.dumps(a[1]) for a in answers}) == 1
    assert DailyUsage.objects.get().quantity == Decimal(8000 * 2000)

"""Tenant isolation, generated from the URLconf.

Every URL pattern of the project is visited (GET and POST) by a signed-in
user of account B, with each URL parameter filled with a resource of
account A. Each answer must be 404 (or, for pages about the user's own
account, show nothing of A). A pattern this test does not know fails the
test, so a new URL cannot skip the check. Non-staff users get no admin page.
"""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import BillingInfo
from aurora_billing.settlement import bill_settle
from core.periods import Period
from payments.services import topup_create
from tests.support import add_price, add_usage, utc

pytestmark = pytest.mark.django_db

# Patterns that are not about any account's data: sign-in pages, help,
# health, token-authenticated API, signature-verified provider callbacks.
PUBLIC = {
    "home", "healthz", "login", "logout", "password_change", "password_change_done", "password_reset", "set_language",
    "password_reset_done", "password_reset_confirm", "password_reset_complete", "help_billing",
    "usage_ingest", "payments_callback", "payments_alipay_return", "payments_paypal_return",
    "payments_paypal_cancel", "account_switch",
    # the payment emulators (payments/emulators): the provider side, holding
    # no account data; mounted only with PAYMENT_EMULATORS
    "alipay_gateway", "alipay_decide", "paypal_token", "paypal_orders", "paypal_order", "paypal_capture",
    "paypal_checkout", "paypal_certificate",
}
# Pages about the signed-in user's current account (no id in the URL).
OWN_ACCOUNT = {"summary", "info", "license", "export_csv", "repay", "topup", "payments", "bills", "funds", "packs",
               "insight", "invoices", "alerts"}
# Pages that name a resource: the parameter is filled with one of account A's.
RESOURCE = {"statement_pdf", "payment_detail", "payment_continue", "payment_cancel", "payments_sandbox_checkout",
            "invoice_file"}


def url_patterns(patterns=None, prefix="", namespace=""):
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(p, URLResolver):
            if str(p.pattern).startswith("admin/"):
                continue
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from url_patterns(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield f"{namespace}{p.name}", p


@pytest.fixture
def tenants(make_account, settings):
    settings.PAYMENTS_SANDBOX = True
    a = make_account(code="acme", name="Acme Ltd", users=(("owner@acme.example", "owner"),))
    b = make_account(code="bolt", name="Bolt Corp", users=(("owner@bolt.example", "owner"),))
    add_price("email", "sg", "0.000300")
    add_usage(a, "sg", "email", "2026-10-05", 123_457)
    bill, _ = bill_settle(account=a, period=Period(2026, 10), now=utc(2026, 11, 2))
    BillingInfo.objects.create(account=a, contact_name="Alice Acme", company_name="Acme Secret Holdings",
                               website="https://acme.example", company_address="1 Acme Road",
                               detailed_address="Floor 7")
    owner_a = a.memberships.get().user
    payment, _ = topup_create(account=a, amount=Decimal("77.77"), method="sandbox", idempotency_key="k-acme",
                              user=owner_a, now=utc(2026, 11, 3))
    return {"a": a, "b": b, "bill": bill, "payment": payment, "owner_b": b.memberships.get().user}


def _values(tenants) -> dict[str, str]:
    return {"period": tenants["bill"].period, "public_id": str(tenants["payment"].public_id)}


def _url(name: str, pattern: URLPattern, values: dict[str, str]) -> str:
    params = list(pattern.pattern.regex.groupindex)
    missing = [p for p in params if p not in values]
    assert not missing, f"{name}: no value of account A for URL parameter(s) {missing}; add one to this test"
    return reverse(name, kwargs={p: values[p] for p in params})


# Markers of account A that must never appear in B's answers.
A_MARKERS = ["Acme", "acme", "123,457", "123457", "37.04", "77.77"]


def test_every_url_pattern_is_classified():
    names = {name for name, _ in url_patterns()}
    unknown = {n.split(":")[-1] for n in names} - PUBLIC - OWN_ACCOUNT - RESOURCE
    assert not unknown, f"new URL pattern(s) without an isolation rule: {sorted(unknown)}"


def test_user_of_b_gets_404_for_every_resource_of_a(client, tenants):
    client.force_login(tenants["owner_b"])
    values = _values(tenants)
    checked = 0
    for name, pattern in url_patterns():
        if name.split(":")[-1] not in RESOURCE:
            continue
        url = _url(name, pattern, values)
        # 404; or 405 where the view does not take the method at all (answered
        # before any lookup, the same for every id) — but one method must be a 404
        answers = {method: getattr(client, method)(url).status_code for method in ("get", "post")}
        assert set(answers.values()) <= {404, 405} and 404 in answers.values(), f"{url} → {answers}"
        checked += 1
    assert checked == len(RESOURCE)


def test_pages_about_the_own_account_show_nothing_of_a(client, tenants):
    client.force_login(tenants["owner_b"])
    for name, pattern in url_patterns():
        if name.split(":")[-1] not in OWN_ACCOUNT:
            continue
        url = _url(name, pattern, {})
        response = client.get(url)
        assert response.status_code in (200, 404), f"GET {url} → {response.status_code}"
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode("utf-8", errors="replace")
        leaked = [m for m in A_MARKERS if re.search(rf"\b{re.escape(m)}\b", text)]
        assert not leaked, f"GET {url} shows account A's {leaked}"


def test_b_cannot_switch_into_account_a(client, tenants):
    client.force_login(tenants["owner_b"])
    response = client.post(reverse("account_switch"), {"account": tenants["a"].pk})
    assert response.status_code == 404
    assert b"Acme" not in client.get(reverse("billing:summary")).content


def test_license_of_a_is_404_for_b_even_when_a_has_one(client, tenants):
    info = tenants["a"].billing_info
    info.license_file.save("x", ContentFile(b"\x89PNG"))
    client.force_login(tenants["owner_b"])
    assert client.get(reverse("billing:license")).status_code == 404


def _admin_urls() -> list[str]:
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        try:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        except Exception:  # noqa: BLE001, S112 - some admins have no add view
            continue
    return urls


@pytest.mark.parametrize("who", ["owner@acme.example", "owner@bolt.example"])
def test_non_staff_get_no_admin_page(client, tenants, who):
    from accounts.models import User

    client.force_login(User.objects.get(email=who))
    urls = _admin_urls()
    assert len(urls) > 10
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), (
            f"GET {url} → {response.status_code}")


def test_fixture_really_holds_data_of_a(client, tenants):
    """The checks above would be empty if A had nothing to leak."""
    client.force_login(tenants["a"].memberships.get().user)
    assert b"Acme" in client.get(reverse("billing:summary") + "?period=2026-10").content
    assert client.get(reverse("billing:statement_pdf", kwargs={"period": "2026-10"})).status_code == 200
    payment_url = reverse("billing:payment_detail", kwargs={"public_id": tenants["payment"].public_id})
    assert client.get(payment_url).status_code == 200

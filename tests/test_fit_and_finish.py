"""Fit and finish of issue #17.9: export placement and range form, the main
navigation, the help page's FAQ, every time shown in UTC+8 and labelled."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import BillingInfo, Membership, User
from tests.support import PASSWORD, utc

pytestmark = pytest.mark.django_db


def signed_in(email):
    client = Client()
    client.force_login(User.objects.get(email=email))
    return client


def test_export_billings_is_at_the_top_with_a_range_form(owner):
    page = owner.get("/billing/?period=2026-10").content.decode()
    head = page[page.index('class="page-head"'):page.index('class="figures')]
    assert "Export Billings" in head  # top right, beside the period filter
    form = re.search(r'<form method="get" action="/billing/export.csv" class="export-range-form">(.*?)</form>',
                     page, re.S).group(1)
    assert 'name="from"' in form and 'name="to"' in form
    response = owner.get("/billing/export.csv", {"from": "2026-10", "to": "2026-10"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")


def test_payments_add_funds_and_invoices_are_in_the_main_navigation(owner, acme):
    nav = re.search(r'<nav class="site-nav".*?</nav>', owner.get("/billing/").content.decode(), re.S).group(0)
    for href in ("/billing/payments/", "/billing/topup/", "/billing/invoices/", "/billing/repay/"):
        assert f'href="{href}"' in nav
    viewer = User.objects.create_user("viewer@acme.example", PASSWORD)
    Membership.objects.create(user=viewer, account=acme, role="viewer")
    nav = re.search(r'<nav class="site-nav".*?</nav>', signed_in("viewer@acme.example").get("/billing/")
                    .content.decode(), re.S).group(0)
    assert 'href="/billing/payments/"' in nav and 'href="/billing/topup/"' not in nav


def test_the_help_page_answers_the_four_questions(client):
    page = client.get("/help/billing/").content.decode()
    for question in ("When is my bill generated?", "Why do I receive the bill email on the 5th?",
                     "How do I see the costs of a single region?", "What does the exported CSV contain?"):
        assert question in page
    assert "message size too large" in page


def test_the_submitted_time_of_billing_information_is_utc8_and_labelled(owner, acme):
    BillingInfo.objects.create(account=acme, contact_name="Li", company_name="Acme", website="https://a.example",
                               company_address="1 Main St", detailed_address="2F",
                               submitted_by=User.objects.get(email="owner@acme.example"),
                               submitted_at=utc(2026, 11, 20, 18, 30))
    page = owner.get("/billing/info/").content.decode()
    assert '<time datetime="2026-11-20T18:30:00+00:00" data-utc8>2026-11-21 02:30 UTC+8</time>' in page


def test_admin_shows_times_in_utc8_and_says_so(admin_client, acme):
    from core.audit import audit_record

    audit_record(action="test.event", summary="an event", account=acme, at=utc(2026, 11, 20, 18, 30))
    page = admin_client.get("/admin/core/auditevent/").content.decode()
    assert "times in UTC+8" in page
    assert "Nov. 21, 2026, 2:30 a.m." in page  # 18:30 UTC

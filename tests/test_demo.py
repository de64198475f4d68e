"""seed_demo gives a newcomer a realistic console: ≥4 regions, ≥6 months,
a paid month and an overdrawn one, and prints the sign-ins."""
from io import StringIO

import pytest
from django.core.management import call_command

from invoices.models import Bill, BillLine
from usage.models import DailyUsage

pytestmark = pytest.mark.django_db


def test_seed_demo_builds_paid_and_overdrawn_months_and_is_idempotent():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    text = out.getvalue()
    assert "owner@acme.example" in text and "demo-pass-123" in text
    assert DailyUsage.objects.values("region").distinct().count() >= 4
    assert DailyUsage.objects.dates("day", "month").count() >= 6
    statuses = {(b.account.code, b.period): {line.status for line in b.lines.all()} for b in Bill.objects.all()}
    assert any(s == {"Paid"} for s in statuses.values())
    assert any("Overdrawn" in s for s in statuses.values())
    counts = (Bill.objects.count(), BillLine.objects.count(), DailyUsage.objects.count())
    call_command("seed_demo", stdout=StringIO())
    assert (Bill.objects.count(), BillLine.objects.count(), DailyUsage.objects.count()) == counts


def test_a_second_run_keeps_what_staff_changed():
    """#13.10: re-running the demo does not provision over edits made in admin."""
    from accounts.models import BillingInfo, BillingInfoChange

    call_command("seed_demo", stdout=StringIO())
    BillingInfo.objects.filter(account__code="xingchen").update(company_name="星辰科技（深圳）有限公司")
    changes = BillingInfoChange.objects.count()
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo accounts already provisioned; left as they are." in out.getvalue()
    assert BillingInfo.objects.get(account__code="xingchen").company_name == "星辰科技（深圳）有限公司"
    assert BillingInfoChange.objects.count() == changes


def test_demo_tells_which_payment_methods_are_offered(settings):
    """#13.6: with the emulators (as `make demo` runs), Alipay and PayPal are offered and say so."""
    settings.PAYMENTS_SANDBOX = True
    settings.WIRE_BANK_DETAILS = "Beneficiary: Aurora SendCloud Pte. Ltd. (demo)"
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert ("Payment methods: Alipay (local emulator), PayPal (local emulator), Wire transfer, "
            "Sandbox (test payment)") in out.getvalue().splitlines()

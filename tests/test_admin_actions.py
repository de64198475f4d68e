"""Staff actions in Django admin: settle accounts, least privileges per group."""
import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from invoices.models import Bill
from tests.support import add_price, add_usage

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/accounts/account/"


def staff(email: str, group: str | None = None, superuser: bool = False) -> User:
    user = User.objects.create_user(email, "staff-pass-123", is_staff=True, is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def usage_for_october(acme):
    add_price("email", "sg", "0.000300")
    add_usage(acme, "sg", "email", "2026-10-05", 10_000)
    return acme


def test_finance_settles_a_period_through_the_intermediate_form(client, usage_for_october):
    client.force_login(staff("fin@aurora.example", "finance"))
    form = client.post(CHANGELIST, {"action": "settle_period", "_selected_action": [usage_for_october.pk]})
    assert form.status_code == 200 and b"Settle a period" in form.content
    bad = client.post(CHANGELIST, {"action": "settle_period", "_selected_action": [usage_for_october.pk],
                                   "apply": "1", "period": "2026-13"})
    assert b"month must be 01 to 12" in bad.content and not Bill.objects.exists()
    done = client.post(CHANGELIST, {"action": "settle_period", "_selected_action": [usage_for_october.pk],
                                    "apply": "1", "period": "2026-10"}, follow=True)
    assert b"1 bill(s) created" in done.content
    bill = Bill.objects.get()
    assert (bill.period, bill.total_amount) == ("2026-10", 3)
    again = client.post(CHANGELIST, {"action": "settle_period", "_selected_action": [usage_for_october.pk],
                                     "apply": "1", "period": "2026-10"}, follow=True)
    assert b"1 period(s) already settled" in again.content and Bill.objects.count() == 1


def test_a_future_period_is_refused(client, usage_for_october):
    client.force_login(staff("root@aurora.example", superuser=True))
    response = client.post(CHANGELIST, {"action": "settle_period", "_selected_action": [usage_for_october.pk],
                                        "apply": "1", "period": "2099-01"}, follow=True)
    assert b"cannot be settled before" in response.content and not Bill.objects.exists()


def test_support_staff_cannot_settle(client, usage_for_october):
    support = staff("help@aurora.example", "support")
    client.force_login(support)
    page = client.get(CHANGELIST)
    assert page.status_code == 200 and b"settle_period" not in page.content
    client.post(CHANGELIST, {"action": "settle_period", "_selected_action": [usage_for_october.pk],
                             "apply": "1", "period": "2026-10"})
    assert not Bill.objects.exists()


def test_auditor_reads_but_changes_nothing(client, usage_for_october):
    client.force_login(staff("audit@aurora.example", "auditor"))
    assert client.get("/admin/payments/ledgerentry/").status_code == 200
    assert client.get("/admin/core/auditevent/").status_code == 200
    assert client.get("/admin/payments/ledgerentry/add/").status_code == 403
    assert client.get("/admin/accounts/billinginfo/").status_code == 200

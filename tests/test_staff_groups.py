import pytest
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


def test_staff_groups_hold_least_privileges():
    """The groups exist after migrate (post_migrate) and hold least privileges."""
    support = set(Group.objects.get(name="support").permissions.values_list("codename", flat=True))
    finance = set(Group.objects.get(name="finance").permissions.values_list("codename", flat=True))
    auditor = set(Group.objects.get(name="auditor").permissions.values_list("codename", flat=True))
    assert "change_billinginfo" in support and "change_ledgerentry" not in support
    assert "add_ledgerentry" in finance and "view_bill" in finance and "change_billinginfo" not in finance
    assert {"change_statement", "add_bill"} <= finance and "change_bill" not in finance
    assert auditor and all(code.startswith("view_") for code in auditor)
    assert "view_auditevent" in auditor

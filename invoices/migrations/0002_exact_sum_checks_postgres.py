"""Exact-sum invariants of bill lines as PostgreSQL CHECK constraints.

SQLite keeps DecimalField values as binary floating point, where
``amount = paid + balance`` can be false for exact decimals, so these
constraints exist on PostgreSQL only (see BillLine's docstring).
"""
from django.db import migrations

CHECKS = {
    "line_amount_is_paid_plus_balance": "amount = paid + balance",
    "line_usage_is_deducted_plus_billable": "usage_quantity = deducted_quantity + billable_quantity",
}


def add(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, expr in CHECKS.items():
        schema_editor.execute(f"ALTER TABLE invoices_billline ADD CONSTRAINT {name} CHECK ({expr})")


def remove(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in CHECKS:
        schema_editor.execute(f"ALTER TABLE invoices_billline DROP CONSTRAINT IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial")]
    operations = [migrations.RunPython(add, remove)]

"""Statements keep each line's figures at issue (``issued_lines``), so a
statement rendered later can list the payments since issue.

Statements issued before this migration recorded no figures; they get the
figures at settlement: the bill's prepaid funds spread over its lines in
``position`` order, each taking min(amount, funds left) (billing-rules §5,
``invoices.calculation.funds_allocate``). A repayment made between the
settlement and such a statement's issue is then listed as paid since issue
(docs/statements.md)."""
from decimal import Decimal

from django.db import migrations, models


def issued_lines_backfill(apps, schema_editor):
    Statement = apps.get_model("invoices", "Statement")
    BillLine = apps.get_model("invoices", "BillLine")
    for statement in Statement.objects.filter(issued_lines={}).select_related("bill").iterator():
        left = max(statement.bill.funds_applied, Decimal("0.00"))
        figures = {}
        for line in BillLine.objects.filter(bill_id=statement.bill_id).order_by("position"):
            paid = min(line.amount, left)
            left -= paid
            balance = line.amount - paid
            figures[str(line.pk)] = {"paid": f"{paid:.2f}", "balance": f"{balance:.2f}",
                                     "status": "Paid" if balance == 0 else "Overdrawn"}
        statement.issued_lines = figures
        statement.save(update_fields=["issued_lines"])


class Migration(migrations.Migration):

    dependencies = [
        ("invoices", "0002_exact_sum_checks_postgres"),
    ]

    operations = [
        migrations.AddField(
            model_name="statement",
            name="issued_lines",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="statement",
            name="pdf",
            field=models.FileField(blank=True, help_text="the PDF as rendered at issue (archived)", max_length=200,
                                   upload_to="statements/%Y/"),
        ),
        migrations.AlterField(
            model_name="statement",
            name="sha256",
            field=models.CharField(blank=True, help_text="SHA-256 (hex) of the archived PDF", max_length=64),
        ),
        migrations.RunPython(issued_lines_backfill, migrations.RunPython.noop),
    ]

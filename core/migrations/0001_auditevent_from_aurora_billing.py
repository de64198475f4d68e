"""AuditEvent, moved here from aurora_billing with its table
``aurora_billing_auditevent`` (created by aurora_billing 0001, made
append-only by its 0002): Django's state only, nothing in the database
changes and no row moves."""
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("accounts", "0001_initial"),
        ("aurora_billing", "0002_append_only_triggers"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ("actor_label", models.CharField(max_length=254)),
                        ("action", models.CharField(db_index=True, help_text="e.g. bill.settled, repayment.succeeded",
                                                    max_length=64)),
                        ("object_type", models.CharField(blank=True, max_length=64)),
                        ("object_id", models.CharField(blank=True, max_length=64)),
                        ("summary", models.CharField(max_length=500)),
                        ("data", models.JSONField(blank=True, default=dict)),
                        ("account", models.ForeignKey(blank=True, null=True,
                                                      on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                                      to="accounts.account")),
                        ("actor", models.ForeignKey(blank=True, null=True,
                                                    on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                                    to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"db_table": "aurora_billing_auditevent", "ordering": ["-at", "-id"]},
                ),
            ],
            database_operations=[],
        ),
    ]

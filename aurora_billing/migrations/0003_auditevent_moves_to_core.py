"""AuditEvent moves to the core app (core/migrations/0001_auditevent_from_aurora_billing):
only Django's state changes; the table, its rows and its append-only trigger stay."""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("aurora_billing", "0002_append_only_triggers"),
        ("core", "0001_auditevent_from_aurora_billing"),
    ]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEvent")],
            database_operations=[],
        ),
    ]

"""On PostgreSQL, history tables refuse UPDATE and DELETE: the audit log is
append-only at the database level, not only by convention."""
from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION aurora_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$ LANGUAGE plpgsql;
"""


def add(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    schema_editor.execute(
        "CREATE TRIGGER aurora_billing_auditevent_append_only BEFORE UPDATE OR DELETE "
        "ON aurora_billing_auditevent FOR EACH ROW EXECUTE FUNCTION aurora_append_only()"
    )


def remove(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "DROP TRIGGER IF EXISTS aurora_billing_auditevent_append_only ON aurora_billing_auditevent"
    )


class Migration(migrations.Migration):
    dependencies = [("aurora_billing", "0001_initial")]
    operations = [migrations.RunPython(add, remove)]

"""Seeds the five service items of billing-rules §2 in catalog order."""
from django.db import migrations

CATALOG = [
    ("email", "Email", "email", 1),
    ("data_flow", "Data Flow", "GB", 2),
    ("dedicated_ip", "Dedicated IP", "IP-month", 3),
    ("data_masking", "Data Masking", "request", 4),
    ("bimi_certification", "BIMI Certification", "certificate-month", 5),
]


def seed(apps, schema_editor):
    ServiceItem = apps.get_model("usage", "ServiceItem")
    for code, name, unit, position in CATALOG:
        ServiceItem.objects.update_or_create(
            code=code, defaults={"name": name, "unit": unit, "position": position}
        )


def unseed(apps, schema_editor):
    apps.get_model("usage", "ServiceItem").objects.filter(code__in=[c[0] for c in CATALOG]).delete()


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]

"""``python manage.py sync_beat_schedule``: write the beat schedule of
``aurora_billing/beat.py`` into django-celery-beat's tables (idempotent)."""
from django.core.management.base import BaseCommand

from aurora_billing.beat import SCHEDULE, beat_schedule_sync


class Command(BaseCommand):
    help = "Sync the beat schedule kept in code (aurora_billing/beat.py) into django-celery-beat's tables."

    def handle(self, *args, **options):
        result = beat_schedule_sync()
        for entry in SCHEDULE:
            self.stdout.write(f"{entry.name}: {entry.task} at cron '{entry.cron}' Asia/Shanghai")
        self.stdout.write(f"Beat schedule synced: {result.summary()}")

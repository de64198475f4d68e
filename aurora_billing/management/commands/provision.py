import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from aurora_billing.provisioning import ProvisionError, provision_apply
from core.money import json_integer


class Command(BaseCommand):
    help = "Declarative, idempotent set-up of regions, prices, accounts, users, email packs and top-ups."

    def add_arguments(self, parser):
        parser.add_argument("file", help="provisioning JSON file (see docs/provisioning.md)")

    def handle(self, *args, file, **options):
        path = Path(file)
        try:
            # -0 stays as written (a JsonNumber), so it is refused as in a string.
            data = json.loads(path.read_text(encoding="utf-8"), parse_int=json_integer)
        except FileNotFoundError:
            raise CommandError(f"{file}: no such file") from None
        except UnicodeDecodeError:
            raise CommandError(f"{file}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise CommandError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
        except OSError as exc:
            raise CommandError(f"{file}: cannot read ({exc.strerror or exc})") from None
        try:
            result = provision_apply(data=data, now=timezone.now())
        except ProvisionError as exc:
            count = len(exc.errors)
            raise CommandError(
                f"{file}: {count} problem{'s' if count != 1 else ''}, nothing was written:\n{exc}"
            ) from None
        self.stdout.write(f"Provisioned {file}: {result.summary()}")
        for name, scope, raw in result.tokens:
            # Shown once: only its SHA-256 is stored.
            self.stdout.write(f"New ingest token {name!r} (writes {scope}): {raw}")

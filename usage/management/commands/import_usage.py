"""``python manage.py import_usage FILE [FILE…]`` (interfaces.md).

Each file is imported all or nothing, in its own transaction; a file whose
content was imported before is skipped. Exits non-zero when any file was
rejected, after reporting its bad lines as ``line N: reason``."""
from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from usage.ingest import FORMATS, FileSource, ImportRejected, format_for
from usage.selectors import usage_import_late_periods
from usage.services import usage_import


class Progress:
    """``records, percent of bytes, records/s`` on one terminal line."""

    def __init__(self, out, source: FileSource) -> None:
        self.out = out
        self.name = source.name
        self.size = max(source.size, 1)
        self.start = time.monotonic()
        self.shown = False

    def __call__(self, records: int, bytes_read: int) -> None:
        rate = records / max(time.monotonic() - self.start, 1e-6)
        percent = min(100, 100 * bytes_read // self.size)
        self.out.write(f"\r{self.name}: {percent:3d}%  {records:,} records  {rate:,.0f} records/s",
                       ending="")
        self.out.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\033[K", ending="")
            self.out.flush()


class Command(BaseCommand):
    help = "Import usage records from CSV or JSON Lines files; each file is imported all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE", help="CSV (.csv) or JSON Lines (.jsonl, .ndjson)")
        parser.add_argument("--format", choices=FORMATS, help="format of every FILE (default: by extension)")

    def handle(self, *args, files: list[str], format: str | None, **options):
        sources = []
        for name in files:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"{name}: no such file")
            try:
                sources.append(FileSource(path, format_for(path, format)))
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        rejected = 0
        for source in sources:
            progress = Progress(self.stderr, source) if self.stderr.isatty() else None
            started = time.monotonic()
            try:
                outcome = usage_import(source=source, now=timezone.now(), progress=progress)
            except ImportRejected as exc:
                rejected += 1
                if progress:
                    progress.clear()
                self.stderr.write(f"{source.name}: rejected, {exc.summary()}")
                for line in exc.report():
                    self.stderr.write(line)
                continue
            if progress:
                progress.clear()
            batch = outcome.usage_import
            if outcome.duplicate:
                self.stdout.write(f"{source.name}: already imported (import #{batch.pk}, "
                                  f"{batch.imported_at:%Y-%m-%d %H:%M} UTC); nothing changed")
                continue
            late = usage_import_late_periods(usage_import=batch)
            late_text = (f", {batch.late_rows:,} of them late for settled periods "
                         f"({', '.join(f'{a} {p}' for a, p in late)})" if late else "")
            self.stdout.write(
                f"{source.name}: imported {batch.records:,} records into {batch.daily_rows:,} daily usage rows"
                f"{late_text} in {time.monotonic() - started:.1f} s (import #{batch.pk})")
        if rejected:
            raise CommandError(f"{rejected} of {len(sources)} file(s) rejected; nothing was stored from them")

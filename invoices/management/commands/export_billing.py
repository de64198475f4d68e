"""``export_billing --period YYYY-MM [--to YYYY-MM] [--output FILE]`` (interfaces.md)."""
from __future__ import annotations

import codecs
import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from core.periods import Period, PeriodError
from invoices.export import ExportCount, export_periods, staff_export_accounts, staff_export_csv


class _TextOut:
    """Bytes written to a command's text output, decoded incrementally."""

    def __init__(self, stream):
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def write(self, data: bytes) -> None:
        self.stream.write(self.decoder.decode(data), ending="")


class Command(BaseCommand):
    help = ("Staff export of every account's settled lines for a period or a range, as CSV "
            "(the console's columns with `account` first). Streams with constant memory.")

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="YYYY-MM: the period, or the first of the range")
        parser.add_argument("--to", help="YYYY-MM: the last period of the range (inclusive)")
        parser.add_argument("--output", help="file to write (default: standard output)")

    def handle(self, *args, period=None, to=None, output=None, **options):
        now = timezone.now()
        try:
            periods = export_periods(first=period, last=to, now=now, max_periods=None)
        except PeriodError as exc:
            raise CommandError(f"--period/--to: {exc}") from None
        first, last = periods[0], periods[-1]
        count = ExportCount()
        unsettled = [str(p) for p in periods if not p.is_billable(now)]
        report = self.stderr if not output else self.stdout
        if unsettled:
            report.write(f"note: {', '.join(unsettled)} not settled yet (the export lists settled lines only)")
        progress = self._progress if sys.stderr.isatty() else None
        if output:
            self._to_file(Path(output), first, last, count, progress)
        else:
            self._copy(_TextOut(self.stdout), first, last, count, progress)
        accounts = staff_export_accounts(first=first, last=last)
        span = str(first) if first == last else f"{first} to {last}"
        report.write(f"Exported {count.lines} lines of {accounts} accounts for {span}"
                     + (f" to {output}" if output else ""))

    def _copy(self, out, first: Period, last: Period, count: ExportCount, progress) -> None:
        done = 0
        for chunk in staff_export_csv(first=first, last=last, count=count):
            out.write(chunk)
            if progress:
                done += chunk.count(b"\n")
                progress(done)
        if progress:
            self.stderr.write("")

    def _to_file(self, path: Path, first: Period, last: Period, count: ExportCount, progress) -> None:
        """Written next to ``path`` and renamed: a failed run leaves no partial file."""
        directory = path.parent if str(path.parent) else Path(".")
        if not directory.is_dir():
            raise CommandError(f"--output: directory {directory} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                self._copy(out, first, last, count, progress)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _progress(self, done: int) -> None:
        """``N lines`` on the terminal, about every 50,000 lines."""
        if done // 50_000 != getattr(self, "_shown", 0):
            self._shown = done // 50_000
            self.stderr.write(f"\r{done - 1:,} lines", style_func=str, ending="")
            self.stderr.flush()

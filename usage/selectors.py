"""Reads of the usage app: ingest tokens and the import log."""
from __future__ import annotations

import hashlib

from django.db.models import Count, Sum

from core.periods import Period

from .models import IngestToken, UsageImport, UsageImportLine


def token_digest(raw: str) -> str:
    """What is stored of an ingest token: its SHA-256 (the token carries
    256 random bits, so a plain hash is enough)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def ingest_token_find(*, raw: str) -> IngestToken | None:
    """The active (not revoked) token ``raw``, or None."""
    if not raw:
        return None
    return IngestToken.objects.filter(token_sha256=token_digest(raw), revoked_at__isnull=True).first()


def usage_import_totals(*, usage_import: UsageImport) -> list[dict]:
    """What an import added, per service item and region, late apart:
    ``[{"service_id", "region_id", "late", "quantity", "rows"}]`` in catalog order."""
    return list(
        UsageImportLine.objects.filter(usage_import=usage_import)
        .values("service_id", "region_id", "late")
        .annotate(quantity=Sum("quantity"), rows=Count("id"))
        .order_by("service__position", "region_id", "late")
    )


def usage_import_late_periods(*, usage_import: UsageImport) -> list[tuple[str, str]]:
    """(account code, period) pairs an import added late usage to."""
    pairs = {
        (code, str(Period.of_day(day)))
        for code, day in UsageImportLine.objects.filter(usage_import=usage_import, late=True)
        .order_by().values_list("account__code", "day").distinct()
    }
    return sorted(pairs)

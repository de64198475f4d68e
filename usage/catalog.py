"""The five service items of billing-rules §2, in catalog order.

Migration 0002 seeds them (with its own frozen copy of this list);
``catalog_ensure`` restores them where a test flush removed them.
"""
from __future__ import annotations

CATALOG = [
    ("email", "Email", "email", 1),
    ("data_flow", "Data Flow", "GB", 2),
    ("dedicated_ip", "Dedicated IP", "IP-month", 3),
    ("data_masking", "Data Masking", "request", 4),
    ("bimi_certification", "BIMI Certification", "certificate-month", 5),
]


def catalog_ensure() -> None:
    from .models import ServiceItem

    if ServiceItem.objects.count() == len(CATALOG):
        return
    for code, name, unit, position in CATALOG:
        ServiceItem.objects.update_or_create(code=code, defaults={"name": name, "unit": unit, "position": position})

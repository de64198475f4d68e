"""Test data builders: prices, usage, packs, billing-rules §8's worked example."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from usage.models import DailyUsage, EmailPack, Price, Region

from .services import utc


def add_price(service, region, unit_price, effective_from="2026-01-01", currency="USD"):
    region_obj = Region.objects.get_or_create(code=region, defaults={"name": region.upper()})[0]
    return Price.objects.create(service_id=service, region=region_obj, unit_price=Decimal(unit_price),
                                currency=currency, effective_from=dt.date.fromisoformat(effective_from))



def add_usage(account, region, service, day, quantity, result=None):
    if result is None:
        result = "delivered" if service == "email" else ""
    region_obj = Region.objects.get_or_create(code=region, defaults={"name": region.upper()})[0]
    row, created = DailyUsage.objects.get_or_create(
        account=account, region=region_obj, service_id=service, result=result,
        day=dt.date.fromisoformat(day), defaults={"quantity": Decimal(quantity)},
    )
    if not created:
        row.quantity += Decimal(quantity)
        row.save(update_fields=["quantity"])
    return row



def add_pack(account, region, reference, quantity, valid_from, valid_until):
    region_obj = Region.objects.get_or_create(code=region, defaults={"name": region.upper()})[0]
    return EmailPack.objects.create(account=account, region=region_obj, reference=reference, quantity=quantity,
                                    valid_from=dt.date.fromisoformat(valid_from),
                                    valid_until=dt.date.fromisoformat(valid_until))



def worked_example_prices() -> None:
    """billing-rules §8 prices in sg: email 0.000300, data flow 0.30."""
    add_price("email", "sg", "0.000300")
    add_price("data_flow", "sg", "0.30")



def worked_example_seed(account) -> None:
    """billing-rules §8 for ``account``, before settlement: funds 5.00, packs
    A and B, 78,000 emails and 20 GB in sg in 2026-10 (prices not included)."""
    from payments.services import topup_record

    topup_record(account=account, amount=Decimal("5.00"), reference="t1", at=utc(2026, 9, 1))
    add_pack(account, "sg", "A", 10_000, "2026-09-01", "2026-10-16")
    add_pack(account, "sg", "B", 50_000, "2026-10-10", "2028-10-10")
    add_usage(account, "sg", "email", "2026-10-05", 8_000)
    add_usage(account, "sg", "email", "2026-10-12", 30_000)
    add_usage(account, "sg", "email", "2026-10-20", 40_000)
    add_usage(account, "sg", "data_flow", "2026-10-15", "20")

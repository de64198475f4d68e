"""A realistic demo: regions, prices, two accounts, seven months of usage,
settled bills (a paid month and overdrawn ones) and the demo sign-ins."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, User
from aurora_billing.provisioning import provision_apply
from aurora_billing.settlement import accounts_settle
from core.periods import Period, billing_day, periods_between
from payments.emulators import provider_emulated
from payments.providers import providers_offered
from usage.ingest import RecordsSource
from usage.models import DailyUsage, ImportOrigin
from usage.services import usage_import

DEMO_PASSWORD = "demo-pass-123"
REGIONS = [("sg", "Singapore"), ("hk", "Hong Kong"), ("us-east", "US East (Virginia)"),
           ("eu-west", "EU West (Frankfurt)")]
# unit prices in USD per unit
PRICES = {
    "email": {"sg": "0.000300", "hk": "0.000320", "us-east": "0.000250", "eu-west": "0.000280"},
    "data_flow": {"sg": "0.30", "hk": "0.32", "us-east": "0.25", "eu-west": "0.28"},
    "dedicated_ip": {"sg": "25.00", "hk": "28.00", "us-east": "20.00", "eu-west": "24.00"},
    "data_masking": {"sg": "0.002000", "hk": "0.002000", "us-east": "0.001500", "eu-west": "0.001800"},
    "bimi_certification": {"sg": "12.00", "hk": "12.00", "us-east": "10.00", "eu-west": "11.00"},
}
RESULT_MIX = [("delivered", 0.90), ("soft_bounce", 0.04), ("format_error", 0.015), ("not_exist", 0.025),
              ("reject", 0.012), ("junk_mail", 0.008)]


def demo_document(first: Period) -> dict:
    start = first.first_day.isoformat()
    return {
        "regions": [{"code": c, "name": n} for c, n in REGIONS],
        "prices": [
            {"service": s, "region": r, "unit_price": p, "currency": "USD", "effective_from": "2025-01-01"}
            for s, by_region in PRICES.items() for r, p in by_region.items()
        ] + [  # a price change: sg email is cheaper from the third demo month on
            {"service": "email", "region": "sg", "unit_price": "0.000280", "currency": "USD",
             "effective_from": first.next().next().first_day.isoformat()},
        ],
        "accounts": [
            {
                "code": "acme", "name": "Acme Ltd", "currency": "USD",
                "users": [
                    {"email": "owner@acme.example", "password": DEMO_PASSWORD, "role": "owner", "name": "Olivia Owner"},
                    {"email": "accountant@acme.example", "password": DEMO_PASSWORD, "role": "accountant",
                     "name": "Alex Accountant"},
                    {"email": "viewer@acme.example", "password": DEMO_PASSWORD, "role": "viewer", "name": "Vic Viewer"},
                ],
                "packs": [
                    {"reference": "acme-sg-2025", "region": "sg", "quantity": 2_000_000,
                     "valid_from": "2025-06-01", "valid_until": "2027-06-01"},
                    {"reference": "acme-hk-q3", "region": "hk", "quantity": 500_000,
                     "valid_from": start, "valid_until": (first.first_day + dt.timedelta(days=120)).isoformat()},
                ],
                "topups": [{"reference": "wire-2025-001", "amount": "1650.00",
                            "at": f"{start}T10:00:00+08:00"}],
            },
            {
                "code": "xingchen", "name": "星辰科技有限公司", "currency": "USD",
                "users": [
                    {"email": "owner@xingchen.example", "password": DEMO_PASSWORD, "role": "owner", "name": "王芳"},
                    {"email": "owner@acme.example", "password": DEMO_PASSWORD, "role": "accountant"},
                ],
                "packs": [{"reference": "xc-hk-2026", "region": "hk", "quantity": 300_000,
                           "valid_from": start, "valid_until": "2028-01-01"}],
                "topups": [{"reference": "alipay-7781", "amount": "300.00", "at": f"{start}T09:00:00+08:00"}],
                "billing_info": {
                    "contact_name": "王芳", "company_name": "星辰科技有限公司", "website": "https://xingchen.example",
                    "company_address": "上海市浦东新区世纪大道100号", "detailed_address": "环球金融中心 25 楼",
                },
            },
        ],
    }


def demo_usage(account: Account, periods: list[Period], today: dt.date, scale: int, regions: list[str],
               seed: int) -> list[dict]:
    """Daily usage records (interfaces.md "Usage records") for the importer."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    records: list[dict] = []

    def record(day: dt.date, region: str, service: str, quantity, result: str = "") -> None:
        records.append({"occurred_at": day.isoformat(), "account": account.code, "region": region,
                        "service": service, "result": result, "quantity": str(quantity)})

    for period in periods:
        for day in period.days():
            if day > today:
                break
            weekday_factor = 0.6 if day.weekday() >= 5 else 1.0
            for region in regions:
                emails = int(scale * weekday_factor * rng.uniform(0.7, 1.3))
                for result, share in RESULT_MIX:
                    record(day, region, "email", int(emails * share * rng.uniform(0.8, 1.2)), result)
                gb = Decimal(emails) * Decimal("0.00035") * Decimal(str(round(rng.uniform(0.6, 1.4), 3)))
                record(day, region, "data_flow", gb.quantize(Decimal("0.000001")))
                if region in ("sg", "us-east"):
                    record(day, region, "data_masking", rng.randint(200, 900))
            if day.day == 1:
                for region in regions[:2]:
                    record(day, region, "dedicated_ip", 2)
                record(day, regions[0], "bimi_certification", 1)
    return records


class Command(BaseCommand):
    help = "Provision a realistic demo (4 regions, 7 months of usage, paid and overdrawn months)."

    def handle(self, *args, **options):
        now = timezone.now()
        current = Period.current(now)
        first = current
        for _ in range(6):
            first = first.previous()
        periods = periods_between(first, current)
        today = billing_day(now)
        with transaction.atomic():
            # The demo seeds once: a second run keeps what people changed
            # since (billing information edited in admin, prices, packs).
            if Account.objects.filter(code__in=["acme", "xingchen"]).count() == 2:
                self.stdout.write("Demo accounts already provisioned; left as they are.")
            else:
                result = provision_apply(data=demo_document(first))
                self.stdout.write(f"Provisioned: {result.summary()}")
            if not User.objects.filter(email="admin@aurora.example").exists():
                User.objects.create_superuser("admin@aurora.example", DEMO_PASSWORD, full_name="Staff Admin")
            acme = Account.objects.get(code="acme")
            xingchen = Account.objects.get(code="xingchen")
            if DailyUsage.objects.filter(account__in=[acme, xingchen]).exists():
                self.stdout.write("Demo usage already present; left as it is.")
            else:
                records = demo_usage(acme, periods, today, 9000, [c for c, _ in REGIONS], seed=7)
                records += demo_usage(xingchen, periods, today, 2500, ["hk", "sg"], seed=11)
                imported = usage_import(source=RecordsSource(records=records, name="seed_demo",
                                                             origin=ImportOrigin.SEED), now=now).usage_import
                self.stdout.write(f"Usage: {imported.records} records into {imported.daily_rows} daily rows "
                                  f"over {len(periods)} months (import #{imported.pk}).")
        for account in (acme, xingchen):
            report = accounts_settle(account_ids=[account.pk], now=now)
            self.stdout.write(f"Settled {account.code}: {report.summary()}")
        methods = [f"{p.label} (local emulator)" if provider_emulated(p.code) else str(p.label)
                   for p in providers_offered(currency=acme.currency)]
        self.stdout.write(f"Payment methods: {', '.join(methods) or 'none configured'}")
        self.stdout.write("")
        self.stdout.write(f"Demo sign-ins (password for all: {DEMO_PASSWORD})")
        self.stdout.write("  owner@acme.example        owner of Acme Ltd, accountant of 星辰科技 (account switcher)")
        self.stdout.write("  accountant@acme.example   accountant of Acme Ltd")
        self.stdout.write("  viewer@acme.example       viewer of Acme Ltd")
        self.stdout.write("  owner@xingchen.example    owner of 星辰科技有限公司")
        self.stdout.write("  admin@aurora.example      staff (Django admin at /admin/)")

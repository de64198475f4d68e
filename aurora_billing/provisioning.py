"""Declarative provisioning (interfaces.md, "Provisioning file").

``provision_apply(data=…)`` validates the whole document first and raises
``ProvisionError`` listing every problem with its JSON path
(``accounts[0].packs[1].quantity: must be a whole number ≥ 0``); only a
valid document is written, in one transaction. Records are keyed by codes,
e-mail addresses and references, so applying the same document twice
changes nothing. Passwords are stored hashed; an unchanged password is not
re-hashed.

This module sits in ``aurora_billing`` because it writes to every app
(accounts, usage, payments) in one transaction.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, BillingInfo, BillingInfoChange, Membership, Role, User
from core.money import currency_check, parse_plain_decimal
from core.periods import parse_day
from payments.models import EntryKind, LedgerEntry
from usage.models import CATALOG_ORDER, EmailPack, IngestToken, Price, Region
from usage.services import ingest_token_create, ingest_token_set_account

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
ACCOUNT_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MAX_ERRORS = 50
BILLING_INFO_FIELDS = ("contact_name", "company_name", "website", "company_address", "detailed_address")
# Largest values the columns hold: Decimal(18, 6) prices and Decimal(14, 2)
# amounts have 12 integer digits; pack quantities are capped well inside
# a BigIntegerField at a trillion emails.
MAX_DECIMAL = Decimal(10) ** 12
MAX_QUANTITY = 10**12
DOCUMENT_PATH = "(document)"


def _max_length(model, field: str) -> int:
    return model._meta.get_field(field).max_length


class ProvisionError(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        shown = errors[:MAX_ERRORS]
        more = f"\n… and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        super().__init__("\n".join(shown) + more)


@dataclass
class ProvisionResult:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    # Ingest tokens created now: (name, what it writes, the token). The
    # token is not stored; this is the one chance to show it.
    tokens: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self, kind: str, outcome: str) -> None:
        bucket = getattr(self, outcome)
        bucket[kind] = bucket.get(kind, 0) + 1

    def summary(self) -> str:
        kinds = ["regions", "prices", "accounts", "users", "memberships", "packs", "topups", "billing_info",
                 "ingest_tokens"]
        parts = []
        for kind in kinds:
            c, u, n = (self.created.get(kind, 0), self.updated.get(kind, 0), self.unchanged.get(kind, 0))
            if c or u or n:
                parts.append(f"{kind}: {c} created, {u} updated, {n} unchanged")
        return "; ".join(parts) or "nothing to provision"


# --- validation -------------------------------------------------------------


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def obj(self, value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> bool:
        if not isinstance(value, dict):
            self.err(path, "must be an object")
            return False
        ok = True
        prefix = "" if path == DOCUMENT_PATH else f"{path}."
        for key in required:
            if key not in value:
                self.err(f"{prefix}{key}", "is required")
                ok = False
        for key in value:
            if key not in required and key not in optional:
                self.err(f"{prefix}{key}", "is not a known key")
                ok = False
        return ok

    def lst(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(path, "must be a list")
            return []
        return value

    def text(self, value: Any, path: str, *, max_length: int, pattern: re.Pattern | None = None,
             hint: str = "") -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.err(path, "must be a non-empty string")
            return None
        if len(value) > max_length:
            self.err(path, f"must be at most {max_length} characters")
            return None
        if pattern and not pattern.match(value):
            self.err(path, hint or f"must match {pattern.pattern}")
            return None
        return value

    def currency(self, value: Any, path: str) -> str | None:
        code = self.text(value, path, max_length=3, pattern=CURRENCY_RE,
                         hint="must be a three-letter ISO 4217 code such as USD")
        if code is None:
            return None
        try:
            return currency_check(code)
        except ValueError as exc:
            self.err(path, str(exc))
            return None

    def day(self, value: Any, path: str) -> dt.date | None:
        if not isinstance(value, str):
            self.err(path, "must be a date string YYYY-MM-DD")
            return None
        try:
            return parse_day(value)
        except ValueError as exc:
            self.err(path, str(exc))
            return None

    def decimal(self, value: Any, path: str, *, places: int) -> Decimal | None:
        if not isinstance(value, str):
            self.err(path, "must be a decimal string, e.g. \"0.000300\"")
            return None
        try:
            number = parse_plain_decimal(value, places=places, what="value")
        except ValueError as exc:
            self.err(path, str(exc).removeprefix("value "))
            return None
        if number >= MAX_DECIMAL:
            self.err(path, f"must be less than {MAX_DECIMAL}")
            return None
        return number

    def whole(self, value: Any, path: str) -> int | None:
        """A JSON integer ≥ 0, or a string of the plain grammar's digits."""
        if isinstance(value, str):
            try:
                value = int(parse_plain_decimal(value, places=0, what="value"))
            except ValueError as exc:
                self.err(path, str(exc).removeprefix("value "))
                return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.err(path, "must be a whole number ≥ 0")
            return None
        if value > MAX_QUANTITY:
            self.err(path, f"must be at most {MAX_QUANTITY}")
            return None
        return int(value)

    def region(self, value: Any, path: str, known: set[str]) -> str | None:
        if not isinstance(value, str):
            self.err(path, "must be a region code (a string)")
            return None
        if value not in known:
            self.err(path, f"unknown region {value!r}")
            return None
        return value


def provision_validate(*, data: Any) -> dict:
    """Check the whole document; return it normalised, or raise ProvisionError."""
    c = _Checker()
    if not c.obj(data, DOCUMENT_PATH, (), ("regions", "prices", "accounts", "ingest_tokens")):
        raise ProvisionError(c.errors)
    out: dict[str, list] = {"regions": [], "prices": [], "accounts": [], "ingest_tokens": []}

    region_codes = set(Region.objects.values_list("code", flat=True))
    seen_regions: set[str] = set()
    for i, item in enumerate(c.lst(data.get("regions"), "regions")):
        path = f"regions[{i}]"
        if not c.obj(item, path, ("code", "name")):
            continue
        code = c.text(item["code"], f"{path}.code", max_length=32, pattern=CODE_RE,
                      hint="must be a short lower-case code such as sg or us-east")
        name = c.text(item["name"], f"{path}.name", max_length=_max_length(Region, "name"))
        if code and code in seen_regions:
            c.err(f"{path}.code", f"duplicate region code {code!r}")
        elif code and name:
            seen_regions.add(code)
            out["regions"].append({"code": code, "name": name})
    known_regions = region_codes | seen_regions

    seen_prices: set[tuple] = set()
    for i, item in enumerate(c.lst(data.get("prices"), "prices")):
        path = f"prices[{i}]"
        if not c.obj(item, path, ("service", "region", "unit_price", "effective_from"), ("currency",)):
            continue
        service, region = item["service"], item["region"]
        ok = True
        if service not in CATALOG_ORDER:
            c.err(f"{path}.service", f"unknown service item {service!r}; expected one of {', '.join(CATALOG_ORDER)}")
            ok = False
        if c.region(region, f"{path}.region", known_regions) is None:
            ok = False
        unit_price = c.decimal(item["unit_price"], f"{path}.unit_price", places=6)
        currency = c.currency(item.get("currency", "USD"), f"{path}.currency")
        effective_from = c.day(item["effective_from"], f"{path}.effective_from")
        if ok and unit_price is not None and currency and effective_from:
            key = (service, region, currency, effective_from)
            if key in seen_prices:
                c.err(path, f"duplicate price for {service}/{region} {currency} from {effective_from}")
                continue
            seen_prices.add(key)
            out["prices"].append({"service": service, "region": region, "unit_price": unit_price,
                                  "currency": currency, "effective_from": effective_from})

    seen_accounts: set[str] = set()
    passwords: dict[str, str] = {}
    for i, item in enumerate(c.lst(data.get("accounts"), "accounts")):
        path = f"accounts[{i}]"
        if not c.obj(item, path, ("code", "name"), ("currency", "users", "packs", "topups", "billing_info")):
            continue
        code = c.text(item["code"], f"{path}.code", max_length=64, pattern=ACCOUNT_CODE_RE,
                      hint="must be a lower-case code of letters, digits, - and _")
        if code and code in seen_accounts:
            c.err(f"{path}.code", f"duplicate account code {code!r}")
            code = None
        if code:
            seen_accounts.add(code)
        name = c.text(item["name"], f"{path}.name", max_length=_max_length(Account, "name"))
        currency = c.currency(item.get("currency", "USD"), f"{path}.currency")
        account = {"code": code, "name": name, "currency": currency, "users": [], "packs": [],
                   "topups": [], "billing_info": None}

        seen_emails: set[str] = set()
        for j, user in enumerate(c.lst(item.get("users"), f"{path}.users")):
            upath = f"{path}.users[{j}]"
            if not c.obj(user, upath, ("email", "role"), ("password", "name", "staff")):
                continue
            email = user["email"]
            try:
                if not isinstance(email, str):
                    raise ValidationError("not a string")
                validate_email(email)
                email = email.strip().lower()
            except ValidationError:
                c.err(f"{upath}.email", "must be an email address")
                email = None
            role = user["role"]
            if role not in Role.values:
                c.err(f"{upath}.role", f"unknown role {role!r}; expected owner, accountant or viewer")
                role = None
            password = user.get("password")
            if password is not None and (not isinstance(password, str) or len(password) < 8):
                c.err(f"{upath}.password", "must be a string of at least 8 characters")
                password = None
            name = user.get("name", "")
            if not isinstance(name, str):
                c.err(f"{upath}.name", "must be a string")
                name = None
            elif len(name) > _max_length(User, "full_name"):
                c.err(f"{upath}.name", f"must be at most {_max_length(User, 'full_name')} characters")
                name = None
            staff = user.get("staff", False)
            if not isinstance(staff, bool):
                c.err(f"{upath}.staff", "must be true or false")
                staff = None
            if email in seen_emails:
                c.err(f"{upath}.email", f"duplicate user {email!r} in this account")
                continue
            if email and password and passwords.setdefault(email, password) != password:
                c.err(f"{upath}.password", f"differs from the password given for {email} elsewhere in the file")
            if email and role and name is not None and staff is not None:
                seen_emails.add(email)
                account["users"].append({"email": email, "role": role, "password": password,
                                         "name": name, "staff": staff})

        seen_refs: set[str] = set()
        for j, pack in enumerate(c.lst(item.get("packs"), f"{path}.packs")):
            ppath = f"{path}.packs[{j}]"
            if not c.obj(pack, ppath, ("reference", "region", "quantity", "valid_from", "valid_until")):
                continue
            ref = c.text(pack["reference"], f"{ppath}.reference", max_length=_max_length(EmailPack, "reference"))
            if ref in seen_refs:
                c.err(f"{ppath}.reference", f"duplicate pack reference {ref!r}")
                ref = None
            region = c.region(pack["region"], f"{ppath}.region", known_regions)
            quantity = c.whole(pack["quantity"], f"{ppath}.quantity")
            valid_from = c.day(pack["valid_from"], f"{ppath}.valid_from")
            valid_until = c.day(pack["valid_until"], f"{ppath}.valid_until")
            if valid_from and valid_until and valid_until <= valid_from:
                c.err(f"{ppath}.valid_until", "must be after valid_from")
                valid_until = None
            if ref and region and quantity is not None and valid_from and valid_until:
                seen_refs.add(ref)
                account["packs"].append({"reference": ref, "region": region, "quantity": quantity,
                                         "valid_from": valid_from, "valid_until": valid_until})

        seen_topups: set[str] = set()
        for j, topup in enumerate(c.lst(item.get("topups"), f"{path}.topups")):
            tpath = f"{path}.topups[{j}]"
            if not c.obj(topup, tpath, ("reference", "amount", "at")):
                continue
            ref = c.text(topup["reference"], f"{tpath}.reference",
                         max_length=_max_length(LedgerEntry, "reference"))
            if ref in seen_topups:
                c.err(f"{tpath}.reference", f"duplicate top-up reference {ref!r}")
                ref = None
            amount = c.decimal(topup["amount"], f"{tpath}.amount", places=2)
            if amount is not None and amount <= 0:
                c.err(f"{tpath}.amount", "must be greater than 0")
                amount = None
            at = None
            if not isinstance(topup["at"], str):
                c.err(f"{tpath}.at", "must be an ISO 8601 instant with offset")
            else:
                try:
                    at = dt.datetime.fromisoformat(topup["at"])
                    if at.tzinfo is None:
                        c.err(f"{tpath}.at", "must carry a UTC offset, e.g. +08:00")
                        at = None
                except ValueError:
                    c.err(f"{tpath}.at", f"{topup['at']!r} is not an ISO 8601 instant")
            if ref and amount is not None and at:
                seen_topups.add(ref)
                account["topups"].append({"reference": ref, "amount": amount, "at": at})

        info = item.get("billing_info")
        if info is not None:
            ipath = f"{path}.billing_info"
            if c.obj(info, ipath, BILLING_INFO_FIELDS):
                values = {}
                for key in BILLING_INFO_FIELDS:
                    values[key] = c.text(info[key], f"{ipath}.{key}", max_length=_max_length(BillingInfo, key))
                if values["website"]:
                    try:
                        URLValidator(schemes=["http", "https"])(values["website"])
                    except ValidationError:
                        c.err(f"{ipath}.website", "must be an http(s) URL")
                account["billing_info"] = values
        out["accounts"].append(account)

    # Ingest tokens (an extension): keyed by name among the active tokens;
    # ``account`` names the one account a tenant token writes, none a
    # platform token.
    known_accounts: set[str] | None = None
    seen_tokens: set[str] = set()
    for i, item in enumerate(c.lst(data.get("ingest_tokens"), "ingest_tokens")):
        path = f"ingest_tokens[{i}]"
        if not c.obj(item, path, ("name",), ("account",)):
            continue
        name = c.text(item["name"], f"{path}.name", max_length=_max_length(IngestToken, "name"))
        if name in seen_tokens:
            c.err(f"{path}.name", f"duplicate ingest token name {name!r}")
            name = None
        elif name:
            active = IngestToken.objects.filter(name=name, revoked_at__isnull=True).count()
            if active > 1:
                c.err(f"{path}.name", f"{active} active ingest tokens are named {name!r}; "
                                      "revoke the extra ones in admin")
                name = None
        code = item.get("account")
        if code is not None:
            if known_accounts is None:
                known_accounts = seen_accounts | set(Account.objects.values_list("code", flat=True))
            if not isinstance(code, str):
                c.err(f"{path}.account", "must be an account code (a string)")
                name = None
            elif code not in known_accounts:
                c.err(f"{path}.account", f"unknown account {code!r}")
                name = None
        if name:
            seen_tokens.add(name)
            out["ingest_tokens"].append({"name": name, "account": code})

    if c.errors:
        raise ProvisionError(c.errors)
    return out


# --- writing ----------------------------------------------------------------


def _upsert(model, lookup: dict, values: dict, result: ProvisionResult, kind: str):
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        obj = model.objects.create(**lookup, **values)
        result.count(kind, "created")
        return obj
    changed = [k for k, v in values.items() if getattr(obj, k) != v]
    if changed:
        for k in changed:
            setattr(obj, k, values[k])
        obj.save(update_fields=changed)
        result.count(kind, "updated")
    else:
        result.count(kind, "unchanged")
    return obj


def provision_apply(*, data: Any, now: dt.datetime | None = None) -> ProvisionResult:
    """Validate ``data`` completely, then write it in one transaction.
    ``now``: when ingest tokens created now are made (default: now)."""
    doc = provision_validate(data=data)
    now = now or timezone.now()
    result = ProvisionResult()
    with transaction.atomic():
        for region in doc["regions"]:
            _upsert(Region, {"code": region["code"]}, {"name": region["name"]}, result, "regions")
        for price in doc["prices"]:
            _upsert(
                Price,
                {"service_id": price["service"], "region_id": price["region"],
                 "currency": price["currency"], "effective_from": price["effective_from"]},
                {"unit_price": price["unit_price"]},
                result, "prices",
            )
        errors: list[str] = []
        for i, acc in enumerate(doc["accounts"]):
            account = _upsert(Account, {"code": acc["code"]},
                              {"name": acc["name"], "currency": acc["currency"]}, result, "accounts")
            for user_doc in acc["users"]:
                _provision_user(account, user_doc, result)
            for j, pack in enumerate(acc["packs"]):
                existing = EmailPack.objects.filter(account=account, reference=pack["reference"]).first()
                if existing is not None and existing.region_id != pack["region"] and existing.deductions.exists():
                    errors.append(f"accounts[{i}].packs[{j}].region: pack {pack['reference']!r} has been used "
                                  f"in region {existing.region_id} and cannot move")
                    continue
                _upsert(EmailPack, {"account": account, "reference": pack["reference"]},
                        {"region_id": pack["region"], "quantity": pack["quantity"],
                         "valid_from": pack["valid_from"], "valid_until": pack["valid_until"]},
                        result, "packs")
            for j, topup in enumerate(acc["topups"]):
                entry = LedgerEntry.objects.filter(account=account, kind=EntryKind.TOPUP,
                                                   reference=topup["reference"]).first()
                if entry is None:
                    LedgerEntry.objects.create(
                        account=account, kind=EntryKind.TOPUP, amount=topup["amount"],
                        currency=account.currency, at=topup["at"], reference=topup["reference"],
                        memo="provisioned",
                    )
                    result.count("topups", "created")
                elif entry.amount != topup["amount"] or entry.at != topup["at"]:
                    errors.append(f"accounts[{i}].topups[{j}]: top-up {topup['reference']!r} is already booked "
                                  f"as {entry.amount} at {entry.at.isoformat()}; ledger entries never change")
                else:
                    result.count("topups", "unchanged")
            if acc["billing_info"]:
                _provision_billing_info(account, acc["billing_info"], result)
        for token_doc in doc["ingest_tokens"]:
            _provision_ingest_token(token_doc, result, now)
        if errors:
            transaction.set_rollback(True)
            raise ProvisionError(errors)
    return result


def _provision_user(account: Account, doc: dict, result: ProvisionResult) -> None:
    user = User.objects.filter(email__iexact=doc["email"]).first()
    if user is None:
        user = User.objects.create_user(doc["email"], doc["password"], full_name=doc["name"],
                                        is_staff=doc["staff"])
        if not doc["password"]:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        result.count("users", "created")
    else:
        changed = []
        if doc["password"] and not check_password(doc["password"], user.password):
            user.set_password(doc["password"])
            changed.append("password")
        if doc["name"] and user.full_name != doc["name"]:
            user.full_name = doc["name"]
            changed.append("full_name")
        if doc["staff"] and not user.is_staff:
            user.is_staff = True
            changed.append("is_staff")
        if changed:
            user.save(update_fields=changed)
        result.count("users", "updated" if changed else "unchanged")
    _upsert(Membership, {"user": user, "account": account}, {"role": doc["role"]}, result, "memberships")


def _provision_ingest_token(doc: dict, result: ProvisionResult, now: dt.datetime) -> None:
    """The active token named ``doc["name"]`` writes ``doc["account"]``
    (None: every account); a new one is made when there is none."""
    account = Account.objects.get(code=doc["account"]) if doc["account"] else None
    token = IngestToken.objects.filter(name=doc["name"], revoked_at__isnull=True).first()
    if token is None:
        token, raw = ingest_token_create(name=doc["name"], account=account, created_by=None, now=now)
        result.count("ingest_tokens", "created")
        result.tokens.append((token.name, token.scope, raw))
    elif ingest_token_set_account(token=token, account=account, changed_by="provision"):
        result.count("ingest_tokens", "updated")
    else:
        result.count("ingest_tokens", "unchanged")


def _provision_billing_info(account: Account, values: dict, result: ProvisionResult) -> None:
    info = BillingInfo.objects.filter(account=account).first()
    if info is None:
        BillingInfo.objects.create(account=account, **values)
        for key, value in values.items():
            BillingInfoChange.objects.create(account=account, source="provision", field=key,
                                             old_value="", new_value=value)
        result.count("billing_info", "created")
        return
    changed = [k for k, v in values.items() if getattr(info, k) != v]
    for key in changed:
        BillingInfoChange.objects.create(account=account, source="provision", field=key,
                                         old_value=getattr(info, key), new_value=values[key])
        setattr(info, key, values[key])
    if changed:
        info.save()
    result.count("billing_info", "updated" if changed else "unchanged")

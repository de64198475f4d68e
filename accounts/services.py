"""Writes about accounts: billing information (billing-rules §7).

The owner submits billing information once from the console
(``billing_info_submit``); afterwards only staff change it in Django admin
(``billing_info_staff_save``). Every changed field is appended to
BillingInfoChange: who, when, where from, old → new.
"""
from __future__ import annotations

import datetime as dt
import logging

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils.translation import check_for_language, get_supported_language_variant

from core.audit import audit_record

from .models import Account, BillingInfo, BillingInfoChange, User, VerificationStatus
from .uploads import CleanLicense

logger = logging.getLogger("aurora.accounts")

# The text fields, in form order; also what a bill's snapshot holds.
BILLING_INFO_TEXT_FIELDS = ("contact_name", "company_name", "website", "company_address", "detailed_address")
# Fields only staff set.
BILLING_INFO_REVIEW_FIELDS = ("verification_status", "rejection_reason")
LICENSE_HISTORY_FIELD = "license"


class BillingInfoError(Exception):
    """A billing information change that is not allowed; the message is for the user."""


class BillingInfoLocked(BillingInfoError):
    """Billing information was already submitted for the account."""


def _store_license(info: BillingInfo, license: CleanLicense) -> None:
    """Write the re-encoded image under a random name (see license_upload_to)."""
    info.license_file.save("license", ContentFile(license.content), save=False)
    info.license_content_type = license.content_type
    info.license_size = license.size
    info.license_sha256 = license.sha256


def _delete_file(name: str) -> None:
    if not name:
        return
    from django.core.files.storage import default_storage

    try:
        default_storage.delete(name)
    except Exception:  # noqa: BLE001 - a leftover file must not fail the request
        logger.exception("could not delete license file %s", name)


def _license_description(info: BillingInfo) -> str:
    if not info.license_file:
        return ""
    return f"{info.license_content_type}, {info.license_size} bytes, sha256 {info.license_sha256}"


def _record(*, account: Account, user: User | None, source: str, now: dt.datetime,
            changes: list[tuple[str, str, str]]) -> None:
    BillingInfoChange.objects.bulk_create(
        BillingInfoChange(account=account, changed_by=user, changed_at=now, source=source,
                          field=field, old_value=old, new_value=new)
        for field, old, new in changes
    )
    if changes:
        audit_record(action=f"billing_info.{source}", actor=user, account=account, at=now,
                     summary=f"billing information of {account.code} changed ({source}): "
                             + ", ".join(field for field, _, _ in changes),
                     data={field: {"old": old, "new": new} for field, old, new in changes})


def billing_info_submit(*, account: Account, user: User, values: dict[str, str], license: CleanLicense,
                        now: dt.datetime) -> BillingInfo:
    """The owner's one submission. Raises BillingInfoLocked if the account
    already has billing information; then nothing is stored, not even the
    file. Concurrent submissions are serialised on the account row
    (PostgreSQL) and the one-to-one constraint is the last guard."""
    stored_name = ""
    try:
        with transaction.atomic():
            Account.objects.select_for_update().filter(pk=account.pk).first()
            if BillingInfo.objects.filter(account=account).exists():
                raise BillingInfoLocked(
                    "Billing information has already been submitted for this account. "
                    "Contact support to modify it."
                )
            info = BillingInfo(account=account, submitted_by=user, submitted_at=now,
                               verification_status=VerificationStatus.PENDING,
                               **{key: values[key] for key in BILLING_INFO_TEXT_FIELDS})
            _store_license(info, license)
            stored_name = info.license_file.name
            try:
                with transaction.atomic():
                    info.save()
            except IntegrityError:
                raise BillingInfoLocked(
                    "Billing information has already been submitted for this account. "
                    "Contact support to modify it."
                ) from None
            changes = [(key, "", values[key]) for key in BILLING_INFO_TEXT_FIELDS]
            changes.append((LICENSE_HISTORY_FIELD, "", license.describe()))
            _record(account=account, user=user, source="console", now=now, changes=changes)
    except BaseException:
        _delete_file(stored_name)
        raise
    return info


def billing_info_license_add(*, account: Account, user: User, license: CleanLicense,
                             now: dt.datetime) -> BillingInfo:
    """The owner adds the business license to billing information that is
    on file without one (provisioned, or created by staff). Once: when a
    license is on file, raises BillingInfoLocked and stores nothing. A
    rejected status goes back to pending review, since the owner has acted
    on it; the text fields stay as they are (staff change them)."""
    stored_name = ""
    try:
        with transaction.atomic():
            Account.objects.select_for_update().filter(pk=account.pk).first()
            info = BillingInfo.objects.filter(account=account).first()
            if info is None:
                raise BillingInfoError("There is no billing information for this account yet; "
                                       "submit the whole form.")
            if info.license_file:
                raise BillingInfoLocked("A business license is already on file for this account. "
                                        "Contact support to replace it.")
            _store_license(info, license)
            stored_name = info.license_file.name
            changes = [(LICENSE_HISTORY_FIELD, "", license.describe())]
            if info.verification_status == VerificationStatus.REJECTED:
                changes += [("verification_status", info.verification_status, VerificationStatus.PENDING),
                            ("rejection_reason", info.rejection_reason, "")]
                info.verification_status = VerificationStatus.PENDING
                info.rejection_reason = ""
            info.save()
            _record(account=account, user=user, source="console", now=now, changes=changes)
    except BaseException:
        _delete_file(stored_name)
        raise
    return info


def billing_info_staff_save(*, account: Account, user: User, values: dict[str, str],
                            license: CleanLicense | None, now: dt.datetime) -> BillingInfo:
    """Staff create or change an account's billing information (Django
    admin). ``values`` holds any of the text and review fields; a rejected
    status needs a reason. Only changed fields are saved and recorded. A
    replaced license file is deleted once the change is committed (its
    sha256 stays in the history)."""
    status = values.get("verification_status")
    if status == VerificationStatus.REJECTED and not (values.get("rejection_reason") or "").strip():
        raise BillingInfoError("A rejected status needs a reason the customer can act on.")
    if status and status != VerificationStatus.REJECTED:
        values = {**values, "rejection_reason": ""}
    stored_name = ""
    try:
        with transaction.atomic():
            Account.objects.select_for_update().filter(pk=account.pk).first()
            info = BillingInfo.objects.filter(account=account).first()
            creating = info is None
            if creating:
                missing = [key for key in BILLING_INFO_TEXT_FIELDS if not values.get(key)]
                if missing:
                    raise BillingInfoError(f"Required: {', '.join(missing)}.")
                info = BillingInfo(account=account, submitted_by=user, submitted_at=now)
            changes: list[tuple[str, str, str]] = []
            for key in (*BILLING_INFO_TEXT_FIELDS, *BILLING_INFO_REVIEW_FIELDS):
                if key not in values:
                    continue
                old = "" if creating else str(getattr(info, key))
                new = str(values[key])
                if creating or old != new:
                    setattr(info, key, values[key])
                    if old != new:
                        changes.append((key, old, new))
            old_file = ""
            if license is not None and license.sha256 != info.license_sha256:
                old_file = info.license_file.name if info.license_file else ""
                old_description = _license_description(info)
                _store_license(info, license)
                stored_name = info.license_file.name
                changes.append((LICENSE_HISTORY_FIELD, old_description, license.describe()))
            if changes or creating:
                try:
                    with transaction.atomic():
                        info.save()
                except IntegrityError:
                    raise BillingInfoError("This account's billing information was created meanwhile; "
                                           "reload and edit it.") from None
                _record(account=account, user=user, source="admin", now=now, changes=changes)
            if old_file:
                transaction.on_commit(lambda: _delete_file(old_file))
    except BaseException:
        _delete_file(stored_name)
        raise
    return info


# --- language preference (docs/i18n.md) --------------------------------------

def user_language_set(*, user: User, language: str) -> bool:
    """Save ``language`` (a code of settings.LANGUAGES, or a variant Django
    maps to one, e.g. ``zh-Hans``) as ``user``'s preference. Anything else is
    ignored and nothing stored; returns whether the preference was saved."""
    if not language or not check_for_language(language):
        return False
    try:
        code = get_supported_language_variant(language)
    except LookupError:
        return False
    if user.language != code:
        user.language = code
        user.save(update_fields=["language"])
    return True

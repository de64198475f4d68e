"""Writes to the funds ledger, repayments, top-ups and provider confirmations."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import NoReturn

from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext

from accounts.models import Account
from accounts.selectors import account_recipients, emails_by_language
from core.audit import audit_record
from core.bulk import rows_insert
from core.money import ZERO_MONEY, round_money
from core.queue import enqueue_on_commit
from invoices.models import Bill, BillLine, LineStatus
from invoices.services import WrittenLine
from usage.models import service_item_label

from .models import (
    EntryKind,
    LedgerEntry,
    Payment,
    PaymentEvent,
    PaymentLine,
    PaymentMethod,
    PaymentPurpose,
    PaymentStatus,
)
from .providers import Checkout, CheckoutUrls, Notification, provider_get, providers_offered
from .selectors import payment_lines


def ledger_settlement_record(*, written: Sequence[tuple[Bill, Sequence[WrittenLine]]], now: dt.datetime) -> None:
    """Append a ``settlement`` entry (−paid) for each line of the settled
    bills that funds paid, in one statement. Runs in settlement's
    transaction, under the accounts' locks."""
    entries = []
    for bill, lines in written:
        for line in lines:
            if line.paid > 0:
                adjustment = f" (adjustment for {line.adjustment_for})" if line.adjustment_for else ""
                entries.append({
                    "account_id": bill.account_id, "kind": EntryKind.SETTLEMENT.value, "amount": -line.paid,
                    "currency": bill.currency, "at": now, "created_at": now, "reference": f"bill:{bill.pk}",
                    "line_id": line.id, "memo": f"{bill.period} {line.service_id}/{line.region_id}{adjustment}",
                    "created_by_id": None,
                })
    rows_insert(LedgerEntry, entries)


def topup_record(*, account: Account, amount: Decimal, reference: str, at: dt.datetime,
                 created_by=None, memo: str = "") -> tuple[LedgerEntry, bool]:
    """Book a top-up once per reference; returns (entry, created)."""
    if amount <= 0:
        raise ValueError("a top-up amount must be greater than 0")
    with transaction.atomic():
        Account.objects.select_for_update().filter(pk=account.pk).first()
        existing = LedgerEntry.objects.filter(account=account, kind=EntryKind.TOPUP, reference=reference).first()
        if existing:
            return existing, False
        entry = LedgerEntry.objects.create(
            account=account, kind=EntryKind.TOPUP, amount=amount, currency=account.currency, at=at,
            reference=reference, created_by=created_by, memo=memo,
        )
        audit_record(action="ledger.topup", actor=created_by, account=account, obj=entry,
                     summary=f"top-up {amount} {account.currency} ({reference}) recorded",
                     data={"amount": amount, "reference": reference, "memo": memo})
        return entry, True


# --- Repayments, top-ups and provider confirmations (billing-rules §6) -----
#
# Every write below locks the account row first, as settlement does, so the
# money writers of one account are serialised on PostgreSQL. The unique
# constraints of Payment and LedgerEntry are the last guard: one payment per
# (account, idempotency key), one provider transaction per payment, one
# ledger booking per payment reference, one repayment per bill line.

log = logging.getLogger("aurora.payments")


def _stored(label) -> str:
    """A choice label (``label()``) in English: ledger memos, status reasons
    and audit summaries are stored text, written the same whatever the
    language of the request that caused them (docs/i18n.md)."""
    with translation.override("en"):
        return str(label())


class PaymentError(Exception):
    """The payment cannot be made as asked; nothing was written. The message
    is meant for the payer."""


class DueChanged(PaymentError):
    """A line shown on the repay page is no longer due as shown."""


class CallbackRefused(Exception):
    """A verified callback that contradicts the payment (amount, currency,
    unknown payment, transaction booked elsewhere). Logged; nothing changed."""


class ConfirmResult(StrEnum):
    APPLIED = "applied"          # money booked and applied (lines Paid / funds topped up)
    REPLAY = "replay"            # the same confirmation again: nothing changed
    EXTRA_CREDITED = "extra_credited"  # a second, different transaction: kept as funds
    DECLINED = "declined"
    CANCELLED = "cancelled"
    IGNORED = "ignored"          # nothing to do (pending, or too late to decline)


class _TransactionTaken(Exception):
    """The provider transaction id is booked for another payment."""


@dataclass(frozen=True)
class FrozenLine:
    """A bill line and the balance shown for it when the repay page was opened."""

    line_id: int
    balance: Decimal


def _event(*, payment: Payment | None, method: str, kind: str, message: str = "", payload: dict | None = None,
           now: dt.datetime) -> PaymentEvent:
    return PaymentEvent.objects.create(payment=payment, method=method, kind=kind, message=message[:500],
                                       payload=payload or {}, at=now)


def _lock_account(account_id: int) -> Account:
    return Account.objects.select_for_update().get(pk=account_id)


def _method_check(*, method: str, account: Account) -> None:
    if method not in {p.code for p in providers_offered(currency=account.currency)}:
        raise PaymentError(gettext("%(method)r is not an available payment method.") % {"method": method})


def _create_once(*, account: Account, idempotency_key: str, build) -> tuple[Payment, bool]:
    """Run ``build(account)`` under the account lock unless a payment with the
    key exists; a concurrent twin that wins the unique constraint is returned."""
    try:
        with transaction.atomic():
            locked = _lock_account(account.pk)
            existing = Payment.objects.filter(account=locked, idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing, False
            return build(locked), True
    except IntegrityError:
        existing = Payment.objects.filter(account=account, idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing, False


def repayment_create(*, account: Account, frozen: Sequence[FrozenLine], method: str, idempotency_key: str,
                     user, now: dt.datetime) -> tuple[Payment, bool]:
    """Create the repayment of exactly the ``frozen`` lines (the breakdown the
    payer saw). Returns (payment, created); the same key returns the first
    payment. Raises DueChanged if a line is no longer due as shown, and
    PaymentError for anything else the payer must fix. An older repayment
    still awaiting payment is cancelled (replaced by this one)."""
    _method_check(method=method, account=account)
    if not frozen:
        raise PaymentError(gettext("Nothing to repay: no overdrawn line was shown."))
    if len({f.line_id for f in frozen}) != len(frozen):
        raise PaymentError(gettext("The breakdown lists a line twice."))

    def build(locked: Account) -> Payment:
        lines = BillLine.objects.select_for_update(of=("self",)).filter(
            pk__in=[f.line_id for f in frozen], bill__account=locked
        ).select_related("bill")
        by_id = {line.pk: line for line in lines}
        if len(by_id) != len(frozen):
            raise PaymentError(gettext("The breakdown does not belong to this account."))
        changed = [by_id[f.line_id] for f in frozen
                   if by_id[f.line_id].status != LineStatus.OVERDRAWN or by_id[f.line_id].balance != f.balance]
        if changed:
            names = ", ".join(f"{ln.bill.period} {ln.service_id}/{ln.region_id}" for ln in changed)
            raise DueChanged(gettext("The amount due changed since the page was opened (%(lines)s is no longer due "
                                     "as shown). Nothing was charged; review the new total and pay again.") % {
                "lines": names})
        for older in Payment.objects.select_for_update().filter(
            account=locked, purpose=PaymentPurpose.REPAYMENT, status=PaymentStatus.PENDING
        ):
            _cancel_locked(payment=older, reason="replaced by a newer repayment", now=now)
        payment = Payment.objects.create(
            account=locked, purpose=PaymentPurpose.REPAYMENT, method=method, amount=sum(f.balance for f in frozen),
            currency=locked.currency, idempotency_key=idempotency_key, created_by=user, created_at=now,
        )
        PaymentLine.objects.bulk_create(
            [PaymentLine(payment=payment, line_id=f.line_id, balance=f.balance) for f in frozen]
        )
        _event(payment=payment, method=method, kind="created", now=now,
               message=f"repayment of {len(frozen)} lines, {payment.amount} {payment.currency}")
        return payment

    return _create_once(account=account, idempotency_key=idempotency_key, build=build)


def topup_create(*, account: Account, amount: Decimal, method: str, idempotency_key: str, user,
                 now: dt.datetime) -> tuple[Payment, bool]:
    """Create a funds top-up of ``amount`` (the payer's choice) to be paid
    through ``method``. Returns (payment, created)."""
    _method_check(method=method, account=account)
    if amount != round_money(amount) or amount <= 0:
        raise PaymentError(gettext("The amount must be greater than 0 with at most 2 decimal places."))

    def build(locked: Account) -> Payment:
        payment = Payment.objects.create(
            account=locked, purpose=PaymentPurpose.TOPUP, method=method, amount=amount, currency=locked.currency,
            idempotency_key=idempotency_key, created_by=user, created_at=now,
        )
        _event(payment=payment, method=method, kind="created", now=now,
               message=f"top-up of {amount} {payment.currency}")
        return payment

    return _create_once(account=account, idempotency_key=idempotency_key, build=build)


def payment_start(*, payment: Payment, urls: CheckoutUrls, now: dt.datetime) -> Checkout:
    """Where the payer goes next for a pending payment. The checkout is
    prepared once; a resubmit gets the same one. Raises ProviderUnavailable."""
    if payment.checkout_url:
        return Checkout(redirect_url=payment.checkout_url, provider_order_id=payment.provider_order_id)
    provider = provider_get(payment.method)
    checkout = provider.checkout_start(payment=payment, urls=urls, now=now)
    Payment.objects.filter(pk=payment.pk, checkout_url="").update(
        checkout_url=checkout.redirect_url, provider_order_id=checkout.provider_order_id
    )
    payment.checkout_url, payment.provider_order_id = checkout.redirect_url, checkout.provider_order_id
    _event(payment=payment, method=payment.method, kind="started", now=now,
           message=checkout.provider_order_id or ("redirect" if checkout.redirect_url else "instructions shown"))
    return checkout


def payment_notification_handle(*, method: str, notification: Notification, now: dt.datetime) -> ConfirmResult:
    """Act on a verified provider notification. Raises CallbackRefused (and
    logs it) when it names no payment of this method or its amount or
    currency differ from the payment's."""
    if not notification.payment_id:
        _event(payment=None, method=method, kind="ignored", message="event about no payment",
               payload=notification.payload, now=now)
        return ConfirmResult.IGNORED
    try:
        payment = Payment.objects.filter(public_id=notification.payment_id, method=method).first()
    except ValidationError:
        payment = None
    if payment is None:
        _refuse(payment=None, method=method, now=now, payload=notification.payload,
                reason=f"notification for unknown payment {notification.payment_id!r}")
    if notification.outcome == "succeeded":
        if notification.amount != payment.amount or notification.currency != payment.currency:
            _refuse(payment=payment, method=method, now=now, payload=notification.payload,
                    reason=f"amount {notification.amount} {notification.currency} does not match the payment's "
                           f"{payment.amount} {payment.currency}")
        return payment_confirm(payment=payment, transaction_id=notification.transaction_id, now=now,
                               payload=notification.payload)
    if notification.outcome in ("declined", "cancelled"):
        return payment_fail(payment=payment, outcome=notification.outcome, now=now, payload=notification.payload,
                            reason=f"{_stored(lambda: provider_get(method).label)} reported the payment "
                                   f"{notification.outcome}")
    _event(payment=payment, method=method, kind="callback", message=f"outcome {notification.outcome}",
           payload=notification.payload, now=now)
    return ConfirmResult.IGNORED


def sandbox_checkout_decide(*, payment: Payment, approve: bool, now: dt.datetime) -> ConfirmResult:
    """The sandbox provider's checkout: approve or decline ``payment`` if it is
    still pending, decided under the account lock (like a real provider, the
    sandbox takes no money for an order that was cancelled meanwhile). The
    decision travels as a signed notification through the same verification
    and handling as any provider callback."""
    sandbox = provider_get(PaymentMethod.SANDBOX)
    with transaction.atomic():
        _lock_account(payment.account_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.status != PaymentStatus.PENDING:
            return ConfirmResult.IGNORED
        params = sandbox.notification_make(payment=payment, outcome="succeeded" if approve else "declined")
        return payment_notification_handle(method=PaymentMethod.SANDBOX,
                                           notification=sandbox.notification_verify(params=params), now=now)


def _refuse(*, payment: Payment | None, method: str, reason: str, payload: dict, now: dt.datetime) -> NoReturn:
    log.warning("payment callback refused method=%s payment=%s: %s", method,
                payment.reference if payment else "-", reason)
    _event(payment=payment, method=method, kind="refused", message=reason, payload=payload, now=now)
    raise CallbackRefused(reason)


def payment_confirm(*, payment: Payment, transaction_id: str, now: dt.datetime, payload: dict | None = None,
                    confirmed_by=None) -> ConfirmResult:
    """Book the money of ``payment`` as received (the amount was checked by
    the caller). Idempotent: the same transaction again changes nothing.

    A repayment pays each frozen line that is still due as frozen (paid +=
    balance, balance 0, Paid) with a ``repayment`` entry for the money and a
    ``repayment_application`` entry per line; money no line could take (the
    line was paid otherwise meanwhile) stays in the funds, applied at the
    next settlement. A top-up books a ``topup`` entry. A second, different
    transaction for a payment already paid is kept as funds and logged."""
    try:
        with transaction.atomic():
            _lock_account(payment.account_id)
            payment = Payment.objects.select_for_update(of=("self",)).select_related("account").get(pk=payment.pk)
            if payment.status == PaymentStatus.SUCCEEDED:
                if not transaction_id or transaction_id == payment.provider_transaction_id:
                    _event(payment=payment, method=payment.method, kind="replay", payload=payload, now=now,
                           message=f"confirmation repeated ({transaction_id or 'no transaction id'}); nothing changed")
                    return ConfirmResult.REPLAY
                return _extra_credit(payment=payment, transaction_id=transaction_id, payload=payload, now=now)
            if transaction_id and Payment.objects.filter(
                method=payment.method, provider_transaction_id=transaction_id
            ).exclude(pk=payment.pk).exists():
                raise _TransactionTaken
            if payment.purpose == PaymentPurpose.TOPUP:
                LedgerEntry.objects.create(
                    account=payment.account, kind=EntryKind.TOPUP, amount=payment.amount, currency=payment.currency,
                    at=now, reference=payment.ledger_reference, created_by=payment.created_by,
                    memo=f"top-up {payment.reference} by {_stored(payment.get_method_display)}",
                )
                reason = ""
            else:
                reason = _repayment_apply(payment=payment, now=now)
            previous = payment.status
            payment.status = PaymentStatus.SUCCEEDED
            payment.provider_transaction_id = transaction_id[:128]
            payment.completed_at = now
            payment.confirmed_by = confirmed_by
            payment.credited_to_funds = bool(reason)
            payment.status_reason = reason or (f"paid after it was {previous}" if previous != "pending" else "")
            payment.save(update_fields=["status", "provider_transaction_id", "completed_at", "confirmed_by",
                                        "credited_to_funds", "status_reason"])
            audit_record(action=f"payment.{payment.purpose}.succeeded", actor=confirmed_by or payment.created_by,
                         account=payment.account, obj=payment, at=now,
                         summary=f"{_stored(payment.get_purpose_display)} {payment.reference}: {payment.amount} "
                                 f"{payment.currency} received by {_stored(payment.get_method_display)}",
                         data={"amount": payment.amount, "transaction_id": transaction_id,
                               "credited_to_funds": bool(reason), "reason": reason})
            _event(payment=payment, method=payment.method, kind="succeeded", payload=payload, now=now,
                   message=f"{payment.amount} {payment.currency} received ({transaction_id or 'no transaction id'})"
                           + (f"; {reason}" if reason else ""))
            from .tasks import payment_receipt_send_task  # tasks import this module

            enqueue_on_commit(payment_receipt_send_task, payment.pk)
    except (IntegrityError, _TransactionTaken):
        # A concurrent confirmation of the same money won (unique transaction
        # id or ledger reference), or the transaction belongs to another payment.
        payment.refresh_from_db()
        if payment.status == PaymentStatus.SUCCEEDED and payment.provider_transaction_id == transaction_id[:128]:
            return ConfirmResult.REPLAY
        _refuse(payment=payment, method=payment.method, now=now, payload=payload or {},
                reason=f"transaction {transaction_id} is already booked for another payment")
    log.info("payment succeeded ref=%s account=%s purpose=%s amount=%s %s", payment.reference,
             payment.account.code, payment.purpose, payment.amount, payment.currency)
    return ConfirmResult.APPLIED


def _repayment_apply(*, payment: Payment, now: dt.datetime) -> str:
    """Mark the frozen lines Paid and write the ledger; returns why money was
    left in the funds ('' when every line took its balance)."""
    frozen = list(payment.lines.all())
    lines = {ln.pk: ln for ln in BillLine.objects.select_for_update(of=("self",)).filter(
        pk__in=[f.line_id for f in frozen]).select_related("bill")}
    entries = [LedgerEntry(account=payment.account, kind=EntryKind.REPAYMENT, amount=payment.amount,
                           currency=payment.currency, at=now, reference=payment.ledger_reference,
                           created_by=payment.created_by,
                           memo=f"repayment {payment.reference} by {_stored(payment.get_method_display)}")]
    paid: list[BillLine] = []
    skipped: list[str] = []
    for f in frozen:
        line = lines[f.line_id]
        name = f"{line.bill.period} {line.service_id}/{line.region_id}"
        if line.status != LineStatus.OVERDRAWN or line.balance != f.balance:
            skipped.append(name)
            continue
        line.paid += line.balance
        line.balance = ZERO_MONEY
        line.status = LineStatus.PAID
        paid.append(line)
        entries.append(LedgerEntry(
            account=payment.account, kind=EntryKind.REPAYMENT_APPLICATION, amount=-f.balance,
            currency=payment.currency, at=now, reference=payment.ledger_reference, line=line,
            created_by=payment.created_by, memo=f"repayment {payment.reference}: {name}"
            + (f" (adjustment for {line.adjustment_for})" if line.adjustment_for else ""),
        ))
    BillLine.objects.bulk_update(paid, ["paid", "balance", "status"])
    LedgerEntry.objects.bulk_create(entries)
    if not skipped:
        return ""
    log.warning("repayment %s received after %s were paid otherwise; the rest is kept as funds",
                payment.reference, ", ".join(skipped))
    return f"{', '.join(skipped)} had been paid otherwise; what they would have taken is kept as funds"


def _extra_credit(*, payment: Payment, transaction_id: str, payload: dict | None, now: dt.datetime) -> ConfirmResult:
    reference = f"{payment.ledger_reference}:{transaction_id}"[:120]
    if LedgerEntry.objects.filter(account_id=payment.account_id, kind=EntryKind.TOPUP, reference=reference).exists():
        _event(payment=payment, method=payment.method, kind="replay", payload=payload, now=now,
               message=f"extra transaction {transaction_id} repeated; nothing changed")
        return ConfirmResult.REPLAY
    LedgerEntry.objects.create(
        account=payment.account, kind=EntryKind.TOPUP, amount=payment.amount, currency=payment.currency, at=now,
        reference=reference, memo=f"second transaction {transaction_id} for {payment.reference}; kept as funds",
    )
    audit_record(action="payment.extra_credited", account=payment.account, obj=payment, at=now,
                 summary=f"second transaction {transaction_id} for {payment.reference}: {payment.amount} "
                         f"{payment.currency} kept as funds", data={"transaction_id": transaction_id})
    log.error("payment %s was paid twice (%s and %s); the second amount is kept as funds — refund if asked",
              payment.reference, payment.provider_transaction_id, transaction_id)
    _event(payment=payment, method=payment.method, kind="extra_credited", payload=payload, now=now,
           message=f"second transaction {transaction_id}: {payment.amount} {payment.currency} kept as funds")
    return ConfirmResult.EXTRA_CREDITED


def payment_fail(*, payment: Payment, outcome: str, reason: str, now: dt.datetime,
                 payload: dict | None = None) -> ConfirmResult:
    """A provider declined (or closed) the payment: a pending payment ends
    declined or cancelled, its lines stay Overdrawn and the payer may pay
    again. A paid payment is never undone by a late decline."""
    with transaction.atomic():
        _lock_account(payment.account_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.status != PaymentStatus.PENDING:
            _event(payment=payment, method=payment.method, kind="ignored", payload=payload, now=now,
                   message=f"{outcome} reported for a payment that is {payment.status}; nothing changed")
            return ConfirmResult.IGNORED
        payment.status = PaymentStatus.DECLINED if outcome == "declined" else PaymentStatus.CANCELLED
        payment.status_reason = reason[:300]
        payment.completed_at = now
        payment.save(update_fields=["status", "status_reason", "completed_at"])
        _event(payment=payment, method=payment.method, kind=outcome, message=reason, payload=payload, now=now)
    log.info("payment %s ref=%s: %s", outcome, payment.reference, reason)
    return ConfirmResult.DECLINED if outcome == "declined" else ConfirmResult.CANCELLED


def _cancel_locked(*, payment: Payment, reason: str, now: dt.datetime) -> None:
    payment.status = PaymentStatus.CANCELLED
    payment.status_reason = reason[:300]
    payment.completed_at = now
    payment.save(update_fields=["status", "status_reason", "completed_at"])
    _event(payment=payment, method=payment.method, kind="cancelled", message=reason, now=now)
    provider = provider_get(payment.method)
    transaction.on_commit(lambda: provider.checkout_cancel(payment=payment))


def payment_cancel(*, payment: Payment, reason: str, now: dt.datetime) -> bool:
    """Cancel a payment still awaiting payment (abandoned at the checkout, or
    cancelled by the payer). Returns False if it was no longer pending."""
    with transaction.atomic():
        _lock_account(payment.account_id)
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status != PaymentStatus.PENDING:
            return False
        _cancel_locked(payment=locked, reason=reason, now=now)
    payment.refresh_from_db()
    return True


def wire_confirm(*, payment: Payment, amount: Decimal, currency: str, bank_reference: str, staff_user,
                 now: dt.datetime) -> ConfirmResult:
    """Staff confirm that a wire transfer for ``payment`` arrived. The amount
    and currency received must be the payment's; the bank's reference of the
    transfer is its transaction id (a transfer is booked once)."""
    if payment.method != PaymentMethod.WIRE:
        raise PaymentError(f"{payment.reference} is not a wire transfer.")
    bank_reference = bank_reference.strip()
    if not bank_reference:
        raise PaymentError("Enter the bank's reference of the transfer.")
    if amount != payment.amount or currency != payment.currency:
        reason = (f"received {amount} {currency} does not match {payment.reference}'s {payment.amount} "
                  f"{payment.currency}")
        log.warning("wire confirmation refused ref=%s by=%s: %s", payment.reference, staff_user, reason)
        _event(payment=payment, method=payment.method, kind="refused", message=reason, now=now,
               payload={"amount": str(amount), "currency": currency, "bank_reference": bank_reference})
        raise PaymentError(f"The amount received ({amount} {currency}) is not the amount of this payment "
                           f"({payment.amount} {payment.currency}); record a different amount as a top-up instead.")
    try:
        return payment_confirm(payment=payment, transaction_id=bank_reference, now=now, confirmed_by=staff_user,
                               payload={"bank_reference": bank_reference, "confirmed_by": str(staff_user)})
    except CallbackRefused as exc:
        raise PaymentError(str(exc)) from None


def payment_receipt_send(*, payment: Payment, site_url: str, now: dt.datetime) -> list[str]:
    """Email the receipt of a paid payment to the payer and the account's
    owners, once. Returns the recipients ([] when already sent)."""
    if payment.status != PaymentStatus.SUCCEEDED:
        return []
    claimed = Payment.objects.filter(pk=payment.pk, receipt_sent_at__isnull=True).update(receipt_sent_at=now)
    if not claimed:
        return []
    recipients = []
    if payment.created_by_id and payment.created_by.is_active:
        recipients.append(payment.created_by.email)
    recipients += [e for e in account_recipients(account=payment.account, roles=("owner",)) if e not in recipients]
    if not recipients:
        return []
    lines = payment_lines(payment=payment)
    messages = []
    # one message per recipient language (each user's preference, else the
    # account's document language): docs/i18n.md
    for language, group in emails_by_language(account=payment.account, emails=recipients).items():
        with translation.override(language):
            # service items by their name in the recipient's language (a name staff changed stays)
            named = [replace(line, service_name=service_item_label(code=line.service_code, name=line.service_name))
                     for line in lines]
            context = {"payment": payment, "lines": named, "site_url": site_url}
            subject = render_to_string("email/payment_receipt_subject.txt", context).strip()
            message = EmailMultiAlternatives(subject=subject, to=group,
                                             body=render_to_string("email/payment_receipt.txt", context))
            message.attach_alternative(render_to_string("email/payment_receipt.html", context), "text/html")
        messages.append(message)
    try:
        for message in messages:
            message.send()
    except Exception:
        Payment.objects.filter(pk=payment.pk).update(receipt_sent_at=None)
        raise
    _event(payment=payment, method=payment.method, kind="receipt_sent", message=", ".join(recipients), now=now)
    return recipients

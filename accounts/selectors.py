"""Reads about accounts and who may see them."""
from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from .models import Account, BillingInfo, BillingInfoChange, Membership, User


def membership_list(*, user: User) -> QuerySet[Membership]:
    """The user's memberships, account loaded, in account code order."""
    if not user.is_authenticated:
        return Membership.objects.none()
    return Membership.objects.filter(user=user).select_related("account").order_by("account__code")


def membership_for(*, user: User, account_id: int | None) -> Membership | None:
    """The user's membership in ``account_id``, else their first one, else None."""
    memberships = list(membership_list(user=user))
    if not memberships:
        return None
    for membership in memberships:
        if membership.account_id == account_id:
            return membership
    return memberships[0]


def account_recipients(*, account: Account, roles: tuple[str, ...] = ("owner", "accountant")) -> list[str]:
    """Email addresses of the account's active users with one of ``roles``."""
    return list(
        Membership.objects.filter(account=account, role__in=roles, user__is_active=True)
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )


def account_recipients_by_language(*, account: Account, roles: tuple[str, ...] = ("owner", "accountant")
                                   ) -> dict[str, list[str]]:
    """``account_recipients`` grouped by the language each is written to:
    the user's preference, else the account's document language. Languages
    in settings.LANGUAGES order, addresses sorted."""
    groups: dict[str, list[str]] = {}
    rows = (Membership.objects.filter(account=account, role__in=roles, user__is_active=True)
            .order_by("user__email").values_list("user__email", "user__language"))
    for email, language in rows:
        groups.setdefault(language or account.document_language, []).append(email)
    order = [code for code, _ in settings.LANGUAGES]
    return dict(sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def emails_by_language(*, account: Account, emails: list[str]) -> dict[str, list[str]]:
    """``emails`` (of users) grouped by the language each is written to:
    the user's preference, else the account's document language; order kept."""
    languages = dict(User.objects.filter(email__in=emails).values_list("email", "language"))
    groups: dict[str, list[str]] = {}
    for email in emails:
        groups.setdefault(languages.get(email) or account.document_language, []).append(email)
    return groups


def billing_info_for(*, account: Account) -> BillingInfo | None:
    """The account's billing information, or None before it is submitted."""
    return BillingInfo.objects.filter(account=account).select_related("submitted_by").first()


def billing_info_history(*, account: Account) -> QuerySet[BillingInfoChange]:
    """Every recorded change of the account's billing information, newest first."""
    return BillingInfoChange.objects.filter(account=account).select_related("changed_by").order_by(
        "-changed_at", "-id"
    )

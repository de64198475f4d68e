"""Reads for the alerts page, the summary strip and the senders."""
from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Account, Membership, Role

from ..models import Alert, AlertOptOut, AlertState

# Who receives alert emails: the account's active owners and accountants
# who did not opt out.
RECIPIENT_ROLES = (Role.OWNER, Role.ACCOUNTANT)


def alert_recipients(*, account: Account) -> list:
    """The users to email, ordered by address."""
    opted_out = AlertOptOut.objects.filter(account=account).values("user_id")
    memberships = (Membership.objects.filter(account=account, role__in=RECIPIENT_ROLES, user__is_active=True)
                   .exclude(user_id__in=opted_out).select_related("user").order_by("user__email"))
    return [m.user for m in memberships]


def alert_opted_out(*, account: Account, user) -> bool:
    return AlertOptOut.objects.filter(account=account, user=user).exists()


def alerts_active(*, account: Account) -> QuerySet[Alert]:
    """The account's alerts whose condition still holds, newest first."""
    return Alert.objects.filter(account=account, state=AlertState.ACTIVE).order_by("-raised_at", "-id")


def alert_history(*, account: Account) -> QuerySet[Alert]:
    """Every alert of the account, newest first, with its emails."""
    return Alert.objects.filter(account=account).prefetch_related("emails").order_by("-raised_at", "-id")

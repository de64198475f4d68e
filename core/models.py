"""The audit log: an append-only record of every change of money and billing
information, by customers, staff and the system."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    # who acted, kept as text so it survives the user's deletion: an email, or "system"
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=64, db_index=True, help_text="e.g. bill.settled, repayment.succeeded")
    account = models.ForeignKey("accounts.Account", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        # moved from aurora_billing (core/migrations/0001): same table, nothing copied
        db_table = "aurora_billing_auditevent"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.summary}"

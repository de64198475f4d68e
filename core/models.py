"""The audit log: an append-only record of every change of money and billing
information, by customers, staff and the system."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AuditEvent(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True, verbose_name=_("at"))
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+", verbose_name=_("actor"))
    # who acted, kept as text so it survives the user's deletion: an email, or "system"
    actor_label = models.CharField(max_length=254, verbose_name=_("actor label"))
    action = models.CharField(max_length=64, db_index=True, help_text=_("e.g. bill.settled, repayment.succeeded"),
        verbose_name=_("action"),
    )
    account = models.ForeignKey("accounts.Account", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+", verbose_name=_("account"))
    object_type = models.CharField(max_length=64, blank=True, verbose_name=_("object type"))
    object_id = models.CharField(max_length=64, blank=True, verbose_name=_("object id"))
    summary = models.CharField(max_length=500, verbose_name=_("summary"))
    data = models.JSONField(default=dict, blank=True, verbose_name=_("data"))

    class Meta:
        # moved from aurora_billing (core/migrations/0001): same table, nothing copied
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        db_table = "aurora_billing_auditevent"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.summary}"

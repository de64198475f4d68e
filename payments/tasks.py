"""Celery tasks for payments. Thin: take ids, call services.

``payment_receipt_send_task`` is queued after the confirming transaction
commits; it retries with exponential backoff while the mail transport
fails (the receipt is claimed once, so a retry never sends it twice).
"""
from __future__ import annotations

import smtplib

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .models import Payment
from .services import payment_receipt_send


@shared_task(name="payments.tasks.payment_receipt_send_task", autoretry_for=(smtplib.SMTPException, OSError),
             retry_backoff=30, retry_backoff_max=3600, max_retries=8)
def payment_receipt_send_task(payment_id: int) -> list[str]:
    payment = Payment.objects.select_related("account", "created_by").filter(pk=payment_id).first()
    if payment is None:
        return []
    return payment_receipt_send(payment=payment, site_url=settings.SITE_URL, now=timezone.now())

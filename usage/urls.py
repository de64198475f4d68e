"""Mounted at /api/."""
from django.urls import path

from . import api

urlpatterns = [
    path("usage/", api.usage_ingest, name="usage_ingest"),
]

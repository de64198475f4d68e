"""Mounted at /api/."""
urlpatterns: list = []

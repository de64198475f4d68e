from django.urls import path, re_path

from . import views

# Mounted under /billing/ in the "billing" namespace.
billing_patterns: list = [
    path("export.csv", views.export_csv, name="export_csv"),
    # Any name before ".pdf" reaches the view, so a malformed period is a 400, not a 404.
    re_path(r"^statements/(?P<period>[^/]+)\.pdf$", views.statement_pdf, name="statement_pdf"),
]
# Mounted at the site root.
root_patterns: list = []

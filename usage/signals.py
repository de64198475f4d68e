"""Signals for the apps above: ``usage_imported`` is sent after an import
stored new usage (``import_id``: the UsageImport's id), inside or after
its transaction; receivers queue work with ``transaction.on_commit``.
(payments evaluates the budget alerts of the accounts it touched.)"""
from django.dispatch import Signal

usage_imported = Signal()

"""Reading usage records: sources (files, API records), the rules for one
record, their validation and summing per daily key (no writes), and the
loaders that write the totals (``loaders``, used by
``usage.services.usage_import``, which stores what ``aggregate`` produces)."""
from .records import ERROR_LIST_CAP, FIELDS, MAX_QUANTITY, MEMO_SIZE, Catalog, ImportRejected, RecordError
from .sources import FORMATS, FileSource, RecordsSource, format_for
from .totals import DayTotals, aggregate

__all__ = [
    "ERROR_LIST_CAP", "FIELDS", "FORMATS", "MAX_QUANTITY", "MEMO_SIZE", "Catalog", "DayTotals", "FileSource",
    "ImportRejected", "RecordError", "RecordsSource", "aggregate", "format_for",
]

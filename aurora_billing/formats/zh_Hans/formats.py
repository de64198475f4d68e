"""Simplified Chinese date formats, as the Chinese cloud billing consoles
write them (Django's own zh_Hans formats for everything else)."""
DATE_FORMAT = "Y-m-d"          # 2026-10-05
SHORT_DATE_FORMAT = "Y-m-d"
YEAR_MONTH_FORMAT = "Y年n月"   # 2026年10月
MONTH_DAY_FORMAT = "n月j日"    # 10月5日
DATETIME_FORMAT = "Y-m-d H:i"  # 2026-10-05 10:00 (admin lists; times are UTC+8)
SHORT_DATETIME_FORMAT = "Y-m-d H:i"

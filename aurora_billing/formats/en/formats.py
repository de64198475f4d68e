"""English date formats of the console (Django's own for everything else)."""
DATE_FORMAT = "j F Y"          # 5 October 2026
SHORT_DATE_FORMAT = "Y-m-d"
YEAR_MONTH_FORMAT = "F Y"      # October 2026
MONTH_DAY_FORMAT = "j F"       # 5 October

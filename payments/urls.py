# Mounted under /billing/ in the "billing" namespace.
billing_patterns: list = []
# Mounted at the site root (provider callbacks, sandbox checkout).
root_patterns: list = []

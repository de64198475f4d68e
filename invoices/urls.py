# Mounted under /billing/ in the "billing" namespace.
billing_patterns: list = []
# Mounted at the site root.
root_patterns: list = []

"""Lists answer a page at a time (contract section 3): `?limit=` items, 50 unless asked, at most 100."""
DEFAULT_PAGE = 50
MAX_PAGE = 100

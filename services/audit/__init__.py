"""`alm audit`: re-fetch a sample of works through the real fetch path and compare."""

"""The web site people use, server-rendered by the API process: plain HTML, one small
stylesheet, nothing fetched from elsewhere, no page needing script (the work page's live update
is the one script, an enhancement) (docs/site.md)."""

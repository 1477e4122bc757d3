"""The web site people use, server-rendered by the API process: plain HTML, one small
stylesheet, no script and nothing fetched from elsewhere (docs/site.md)."""

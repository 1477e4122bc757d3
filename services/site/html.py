"""The site's page skeleton: every page is plain HTML with a title, the stylesheet, a
navigation bar, a main landmark and (where there is one) a `<link rel=alternate>` to the JSON
of the same thing. Every value from outside passes `text()` (HTML-escaped) on its way in."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from aiohttp import web

STYLESHEET = "/static/site.css"
# nothing but this origin's stylesheet and forms; no script, no frames, no plug-ins
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_NAV = (
    ("/works", "Works"),
    ("/sources", "Sources"),
    ("/signup", "Get an API key"),
    ("/signin", "Sign in"),
    ("/api/v1/openapi.json", "API"),
)


def text(value: object) -> str:
    """`value` as HTML text or attribute value: `& < > " '` escaped."""
    return escape(str(value), quote=True)


@dataclass(frozen=True, slots=True)
class Alternate:
    """A `<link rel=alternate>`: the same thing as JSON."""

    href: str
    title: str
    type: str = "application/json"


def page(
    title: str,
    body: str,
    status: int = 200,
    alternate: Alternate | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A whole page: `title` (plain text, escaped here) and `body` (HTML, already escaped)."""
    link = ""
    if alternate is not None:
        link = (
            f'\n<link rel="alternate" type="{text(alternate.type)}" '
            f'href="{text(alternate.href)}" title="{text(alternate.title)}">'
        )
    nav = "".join(f'<li><a href="{href}">{label}</a></li>' for href, label in _NAV)
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{text(title)} · ALM</title>
<link rel="stylesheet" href="{STYLESHEET}">{link}
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header><nav aria-label="Site"><a class="brand" href="/">ALM</a><ul>{nav}</ul></nav></header>
<main id="main">
<h1>{text(title)}</h1>
{body}
</main>
</body>
</html>
"""
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )

"""The sections of a work's page (services/site/work.py), each a pure function from what the
API's presenter gives (`present_work`, `present_history`, `v5_event`) to escaped HTML."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from services.core.history import PERIODS
from services.core.metrics import Group, Slot
from services.site import chart
from services.site.html import text

GROUPS = tuple(g.value for g in Group)
SLOTS = (*(s.value for s in Slot), "total")
MAX_EVENTS = 100  # events listed per source; the rest are in the API's


def number(value: int | None) -> str:
    """`1,234`, or an em dash for a count not reported."""
    return "—" if value is None else f"{value:,}"


def work_path(work_id: str) -> str:
    """The page of a work (its id as the path: DOIs keep their slashes)."""
    return f"/works/{quote(work_id, safe='/:')}"


def metadata(work: Mapping[str, Any]) -> str:
    """Title, date, type, publisher and the work's identifiers, each linked to its resolver."""
    rows = []
    if work.get("doi"):
        doi = text(work["doi"])
        url = text(f"https://doi.org/{quote(work['doi'], safe='/:;()')}")
        rows.append(("DOI", f'<a href="{url}">{doi}</a>'))
    if work.get("pmid"):
        url = text(f"https://pubmed.ncbi.nlm.nih.gov/{quote(work['pmid'])}/")
        rows.append(("PMID", f'<a href="{url}">{text(work["pmid"])}</a>'))
    if work.get("pmcid"):
        url = text(f"https://www.ncbi.nlm.nih.gov/pmc/articles/{quote(work['pmcid'])}/")
        rows.append(("PMCID", f'<a href="{url}">{text(work["pmcid"])}</a>'))
    for label, key in (("Issued", "issued"), ("Type", "type"), ("Publisher", "publisher")):
        if work.get(key):
            rows.append((label, text(work[key])))
    updated = work.get("updated_at")
    rows.append(("Last retrieved", f"<time>{text(updated)}</time>" if updated else "not yet"))
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return f'<dl class="meta">{items}</dl>'


def groups_table(groups: Mapping[str, int]) -> str:
    """The work's figure per ALM group (what `groups` of /api/v1/works/{id} says)."""
    cells = "".join(
        f'<tr><th scope="row">{g}</th><td class=num data-label="Count" data-group="{g}">'
        f"{number(groups.get(g, 0))}</td></tr>"
        for g in GROUPS
    )
    return f"""<div class="scroll"><table id="groups">
<caption>Per group</caption>
<thead><tr><th scope=col>Group</th><th scope=col>Count</th></tr></thead>
<tbody>{cells}</tbody></table></div>"""


def _status(source: Mapping[str, Any]) -> str:
    status = source.get("status")
    if status is None:
        return "not fetched yet"
    shown = f'<span class="{"ok" if status != "error" else "error"}">{text(status)}</span>'
    if source.get("error"):
        shown += f': <span class="error">{text(source["error"])}</span>'
    return shown


def sources_table(sources: Sequence[Mapping[str, Any]]) -> str:
    """Per source: group, ALM's slots and total (as `sources[].alm` says), status and last
    error, when retrieved, and a link to the upstream calls the numbers came from."""
    head = "".join(f"<th scope=col>{s}</th>" for s in SLOTS)
    rows = []
    for s in sources:
        name = text(s["name"])
        alm = s.get("alm") or {}
        slots = "".join(
            f'<td class=num data-label="{slot}" data-source="{name}" data-slot="{slot}">'
            f"{number(alm.get(slot))}</td>"
            for slot in SLOTS
        )
        retrieved = s.get("retrieved_at")
        when = f"<time>{text(retrieved)}</time>" if retrieved else "never"
        rows.append(
            f'<tr><th scope="row"><a href="#source-{name}">{text(s["display_name"])}</a></th>'
            f'<td data-label="Group">{text(s.get("group") or "—")}</td>{slots}'
            f'<td data-label="Status">{_status(s)}</td><td data-label="Retrieved">{when}</td>'
            f'<td data-label="Provenance"><a href="{text(s["provenance"])}">'
            f"upstream calls<span class=visually-hidden> of {text(s['display_name'])}</span>"
            "</a></td></tr>"
        )
    if not rows:
        return "<p>No source has been asked about this work yet.</p>"
    return f"""<div class="scroll"><table id="sources">
<caption>Per source</caption>
<thead><tr><th scope=col>Source</th><th scope=col>Group</th>{head}
<th scope=col>Status</th><th scope=col>Retrieved</th><th scope=col>Provenance</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></div>"""


def period_switch(path: str, period: str) -> str:
    """Links to this page's history by day, month or year (no script needed)."""
    current = ' aria-current="page"'
    links = "".join(
        f'<li><a href="{text(path)}?period={p}#history"{current if p == period else ""}>'
        f"by {p}</a></li>"
        for p in PERIODS
    )
    return f'<nav aria-label="History period" class="periods"><ul>{links}</ul></nav>'


def history_section(name: str, display: str, history: Mapping[str, Any] | None) -> str:
    """One source's chart by the page's period and its table (every bucket, the undated
    remainder too)."""
    buckets = history["buckets"] if history else []
    period = history["period"] if history else "month"
    labels = [chart.label_of(b) for b in buckets]  # digits and dashes, or `undated`
    shown = [
        chart.Point(label, int(b["total"]))
        for label, b in zip(labels, buckets, strict=True)
        if not b.get("undated")
    ]
    title = f"{display}: counts by {period}" + (
        f", {len(shown)} {period}s from {shown[0].label} to {shown[-1].label}" if shown else ""
    )
    svg = chart.render(shown, title)
    if not buckets:
        return f"{svg}<p>No history yet.</p>"
    rows = "".join(
        f'<tr><th scope="row">{label}</th>'
        f'<td class=num data-label="Count">{number(b["total"])}</td></tr>'
        for label, b in zip(labels, buckets, strict=True)
    )
    origin = text(history["origin"]) if history else ""
    undated = sum(b["total"] for b in buckets if b.get("undated"))
    if undated:
        svg += (
            f'<p class="hint">Not on the chart: {number(undated)} earlier or not dated '
            "(the table's <q>undated</q> row).</p>"
        )
    display, period = text(display), text(period)
    return f"""{svg}
<details><summary>{display} by {period} as a table</summary>
<div class="scroll"><table class="history" data-source="{text(name)}">
<caption>{display}: counts by {period} (from {origin})</caption>
<thead><tr><th scope=col>{period.capitalize()}</th><th scope=col>Count</th></tr></thead>
<tbody>{rows}</tbody></table></div></details>"""


def events_list(events: Sequence[Mapping[str, Any]], total: int, api: str) -> str:
    """The source's events (citing works, posts, pages...), each linked where it has a URL;
    at most MAX_EVENTS, the rest from the API."""
    if not events:
        return ""
    items = []
    for e in events[:MAX_EVENTS]:
        csl = e.get("event_csl") or {}
        title = text(csl.get("title") or e.get("event_url") or "untitled")
        url = e.get("event_url")
        shown = f'<a href="{text(url)}">{title}</a>' if url else title
        container = csl.get("container-title")
        if container:
            shown += f" <span class=hint>{text(container)}</span>"
        if e.get("event_time"):
            shown += f" <time class=hint>{text(e['event_time'])}</time>"
        items.append(f"<li>{shown}</li>")
    more = (
        f'<p>{MAX_EVENTS} of {total:,} shown: <a href="{text(api)}">all of them as JSON</a>.</p>'
        if total > MAX_EVENTS
        else ""
    )
    listed = "".join(items)
    return f"<details><summary>Events ({total:,})</summary><ul>{listed}</ul>{more}</details>"


def badge_snippet(origin: str, work_id: str) -> str:
    """The badge, and the HTML another site pastes to show it."""
    src = f"{origin}/badge/{quote(work_id, safe='/:')}.svg"
    snippet = f'<img alt="ALM metrics" src="{src}">'
    return f"""<p><img alt="ALM metrics badge of this work" src="{text(src)}"></p>
<p>To show it on another page, paste:</p>
<p><code class="key">{text(snippet)}</code></p>"""

"""The fetcher plug-in contract: a source builds requests for a batch of works and parses the
responses into one outcome per work. Plug-ins are pure: no I/O, no clock, no aiohttp.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

from services.core.catalog import SourceInfo
from services.core.events import FetchError, PeriodCount, SourceEvent
from services.core.identifiers import (
    InvalidIdentifier,
    normalize_doi,
    normalize_pmcid,
    normalize_pmid,
)
from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.text import NAME_LIMIT, TITLE_LIMIT, URL_LIMIT, bounded
from services.core.works import WorkRef


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One HTTP call to an upstream, and the works whose outcome it decides."""

    path: str  # appended to the source's base URL; already URL-encoded
    works: tuple[WorkRef, ...]
    params: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    json_body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    step: str = "main"  # multi-call sources name their steps
    context: Mapping[str, str] = field(default_factory=dict)
    host: str | None = None  # another API root of the source (absolute URL); None: base_url
    form: tuple[tuple[str, str], ...] = ()  # an application/x-www-form-urlencoded body
    optional: bool = False  # its failure leaves the works' other outcomes standing (event lists)
    auth: UpstreamRequest | None = None  # the token call authorizing this one (set by the engine)


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """An upstream's answer; header names are lower-case; `elapsed`: seconds from sending
    the request to the end of the body (0 where not measured)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    elapsed: float = 0.0

    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Found:
    """The upstream knows the work: its metrics, and optionally periods and events.

    A metric the source declares but leaves out of `metrics` counts zero; one mapped to None is
    one the upstream did not report (ALM's null, e.g. a field the answer lacks), so it is stored
    as absent rather than as zero.
    """

    metrics: Mapping[str, int | None]
    periods: tuple[PeriodCount, ...] = ()
    events: tuple[SourceEvent, ...] = ()
    events_url: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)  # title, issued (YYYY-MM-DD), pmid, ...


@dataclass(frozen=True, slots=True)
class NotFound:
    """The upstream has no record of the work: every declared metric is zero."""

    detail: str = ""


@dataclass(frozen=True, slots=True)
class Failed:
    """The call or its payload failed for this work: stored totals stay as they are."""

    error: FetchError


Outcome = Found | NotFound | Failed


@dataclass(frozen=True, slots=True)
class ParseResult:
    """Outcomes by work id, and further calls some works still need (paging, second steps)."""

    outcomes: Mapping[str, Outcome] = field(default_factory=dict)
    follow_ups: tuple[UpstreamRequest, ...] = ()


class PayloadError(ValueError):
    """The upstream answered with something that is not the documented format."""


class ConfigError(ValueError):
    """The source cannot build its calls from this configuration (a missing credential)."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A credential an auth call returned; sent as `header: scheme value` on the source's calls."""

    value: str
    expires_in: float | None = None  # seconds; None = until the upstream answers 401
    header: str = "Authorization"
    scheme: str = "Bearer"

    def header_value(self) -> str:
        """The header value carrying the token."""
        return f"{self.scheme} {self.value}" if self.scheme else self.value


@dataclass(frozen=True, slots=True)
class Limits:
    """A source's politeness defaults; upstream rate-limit headers override them at run time."""

    requests_per_second: float = 5.0
    concurrency: int = 2


class Source:
    """Base of every source plug-in. Subclasses fill in the class attributes and two methods."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    group: ClassVar[Group]
    metrics: ClassVar[tuple[MetricSpec, ...]]
    base_url: ClassVar[str]
    batch_size: ClassVar[int] = 1
    limits: ClassVar[Limits] = Limits()
    auth: ClassVar[str] = "none"
    needs: ClassVar[tuple[str, ...]] = ("doi",)  # identifiers a work must have to be fetched
    events_url_template: ClassVar[str | None] = None
    description: ClassVar[str] = ""

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """The calls that fetch `works` (at most `batch_size` of them)."""
        raise NotImplementedError

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """Outcomes for the works of `request`, from a 2xx or 404 response."""
        raise NotImplementedError

    def auth_request(self, config: SourceConfig) -> UpstreamRequest | None:
        """The call that obtains an access token for `config`'s credentials; None: no auth step.

        The HTTP layer sends it once, caches the token per source and renews it on a 401.
        """
        return None

    def parse_auth(self, response: UpstreamResponse) -> AccessToken:
        """The token in the auth call's 2xx response (an OAuth2 token response by default)."""
        return bearer_token(response)

    def refused_call(self, request: UpstreamRequest, response: UpstreamResponse) -> str | None:
        """Why a 4xx answer refuses the call itself (a parameter or route the upstream does not
        accept: the source's own failure, counted toward pausing it), read from the upstream's
        error body; None (the default) takes it as a refusal of one of the call's identifiers,
        which the engine isolates by asking again in halves."""
        return None

    def missing_config(self, config: SourceConfig) -> str | None:
        """Why the source cannot run with `config` (a required credential is absent), else None."""
        return None

    def complete(self, found: Found) -> Found:
        """A work's outcome once all its calls are merged (derive totals from merged events)."""
        return found

    def zero_metrics(self) -> dict[str, int]:
        """What a work the upstream does not know counts: zero for every declared metric."""
        return {spec.name: 0 for spec in self.metrics}

    def fetchable(self, work: WorkRef) -> bool:
        """Whether `work` has an identifier this source can look up."""
        return any(getattr(work, need, None) for need in self.needs)

    def events_url(self, work: WorkRef) -> str | None:
        """A page where a person can see the work's events upstream, if the source has one."""
        if self.events_url_template is None or not work.doi:
            return None
        return self.events_url_template.format(doi=quote(work.doi, safe="/"))

    def info(self) -> SourceInfo:
        """What the API, the site and the CLI know of this source (services/core/catalog.py)."""
        return SourceInfo(
            name=self.name,
            display_name=self.display_name,
            group=self.group,
            metrics=self.metrics,
            description=self.description,
            batch_size=self.batch_size,
            auth=self.auth,
            requests_per_second=self.limits.requests_per_second,
            concurrency=self.limits.concurrency,
            base_url=self.base_url,
        )

    def describe(self) -> dict[str, Any]:
        """The source as `alm sources --json` and `GET /api/v1/sources` show it."""
        return self.info().describe()


def json_payload(response: UpstreamResponse) -> Any:
    """The response body as JSON, or PayloadError naming what came instead (HTML, truncation)."""
    text = response.text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        snippet = " ".join(text[:80].split())
        kind = "HTML page" if text.lstrip().startswith("<") else "invalid JSON"
        raise PayloadError(f"{kind} instead of JSON ({exc.msg} at {exc.pos}): {snippet!r}") from exc


def expect(condition: bool, message: str) -> None:
    """Raise PayloadError(message) unless `condition` holds."""
    if not condition:
        raise PayloadError(message)


def as_object(value: Any, what: str) -> dict[str, Any]:
    """`value` if it is a JSON object, else PayloadError naming `what`."""
    if not isinstance(value, dict):
        raise PayloadError(f"{what} is not a JSON object")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    """`value` if it is a JSON array, else PayloadError naming `what`."""
    if not isinstance(value, list):
        raise PayloadError(f"{what} is not a JSON array")
    return value


def as_count(value: Any, field_name: str) -> int:
    """A non-negative integer count from an int or a digit string (OpenCitations sends strings)."""
    if isinstance(value, bool):
        raise PayloadError(f"{field_name} is a boolean, not a count")
    if isinstance(value, int):
        count = value
    elif isinstance(value, str) and value.strip().isdigit():
        count = int(value.strip())
    else:
        raise PayloadError(f"{field_name} is not a count: {value!r}")
    if count < 0:
        raise PayloadError(f"{field_name} is negative: {count}")
    return count


def for_all(works: Sequence[WorkRef], outcome: Outcome) -> dict[str, Outcome]:
    """The same outcome for every work of a request."""
    return {w.work_id: outcome for w in works}


def bearer_token(response: UpstreamResponse) -> AccessToken:
    """The token of an OAuth2 token response (`access_token`, optional `expires_in`)."""
    payload = json_payload(response)
    expect(isinstance(payload, dict), "token response is not a JSON object")
    token = payload.get("access_token")
    expect(isinstance(token, str) and bool(token), "token response without access_token")
    expires = payload.get("expires_in")
    seconds = float(expires) if isinstance(expires, int | float) and expires > 0 else None
    return AccessToken(str(token), seconds)


def encode_path(value: str) -> str:
    """URL-encode an identifier for use inside a path segment (slashes kept)."""
    return quote(value, safe="/:")


def work_meta(
    title: Any = None,
    issued: Any = None,
    publisher: Any = None,
    pmid: Any = None,
    pmcid: Any = None,
    canonical_url: Any = None,
) -> dict[str, str]:
    """Work metadata an upstream reported, keeping only well-formed values.

    `issued` may be `YYYY[-MM[-DD]]` text or Crossref `date-parts` (`[[2026, 9]]`); metadata
    never fails a fetch, so malformed values are dropped rather than raised.
    """
    meta: dict[str, str] = {}
    if isinstance(title, list):
        title = title[0] if title else None
    if isinstance(title, str) and title.strip():
        meta["title"] = bounded(" ".join(title.split()), TITLE_LIMIT)
    day = _issued(issued)
    if day:
        meta["issued"] = day
    if isinstance(publisher, str) and publisher.strip():
        meta["publisher"] = bounded(" ".join(publisher.split()), NAME_LIMIT)
    if pmid is not None:  # (a missing id costs nothing: no refused parse)
        pmid_text = str(pmid).rsplit("/", 1)[-1] if isinstance(pmid, str | int) else ""
        with contextlib.suppress(InvalidIdentifier):
            meta["pmid"] = normalize_pmid(pmid_text)
    if pmcid:
        with contextlib.suppress(InvalidIdentifier):
            meta["pmcid"] = normalize_pmcid(str(pmcid), bare_digits=False)
    if (
        isinstance(canonical_url, str)
        and canonical_url.startswith("http")
        and len(canonical_url) <= URL_LIMIT
    ):
        meta["canonical_url"] = canonical_url
    return meta


def _issued(value: Any) -> str | None:
    parts: list[Any] = []
    if isinstance(value, dict):
        value = value.get("date-parts")
    if isinstance(value, list) and value and isinstance(value[0], list):
        parts = value[0]
    elif isinstance(value, str):
        parts = value[:10].split("-")
    try:
        numbers = [int(p) for p in parts][:3]
    except (TypeError, ValueError):
        return None
    if not numbers or not 1000 <= numbers[0] <= 9999:
        return None
    numbers += [1] * (3 - len(numbers))
    year, month, day = numbers
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


def index_by_doi(items: Any, field_name: str, what: str) -> dict[str, dict[str, Any]]:
    """A batch answer's items keyed by the normalised DOI in `field_name` (`https://doi.org/`
    forms and any case accepted; items without a readable DOI are left out)."""
    expect(isinstance(items, list), f"{what} is not a list")
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        expect(isinstance(item, dict), f"an item of {what} is not an object")
        raw = item.get(field_name)
        if isinstance(raw, str):
            try:
                out[normalize_doi(raw)] = item
            except InvalidIdentifier:
                continue
    return out

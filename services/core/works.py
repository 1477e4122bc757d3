"""The work record: a research output and its identifiers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from services.core.identifiers import Identifier, IdType

IDENTIFIERS = ("doi", "pmid", "pmcid")
METADATA = ("title", "issued", "publisher", "canonical_url", "type", "publisher_id")
FIELDS = IDENTIFIERS + METADATA  # every field of a Work but its work_id


@dataclass(frozen=True, slots=True)
class Work:
    """A registered work; `work_id` is its lower-case DOI, else `pmid:N` or `pmcid:PMCN`."""

    work_id: str
    doi: str | None = None
    pmid: str | None = None
    pmcid: str | None = None
    title: str | None = None
    issued: date | None = None
    publisher: str | None = None
    canonical_url: str | None = None
    type: str | None = None  # Crossref's work type (`journal-article`, `book-chapter`, ...)
    publisher_id: str | None = None  # the publisher's Crossref member id (ALM's publisher_id)

    @classmethod
    def from_identifier(cls, ident: Identifier, **meta: Any) -> Work:
        """A new work whose primary id is `ident`."""
        kind, value = ident.type, ident.value
        if meta:
            return cls(
                work_id=ident.work_id,
                doi=value if kind is IdType.DOI else None,
                pmid=value if kind is IdType.PMID else None,
                pmcid=value if kind is IdType.PMCID else None,
                **meta,
            )
        # Positional and without `meta`: a bulk import makes one for every id it reads.
        if kind is IdType.DOI:
            return cls(value, value)
        if kind is IdType.PMID:
            return cls(ident.work_id, None, value)
        return cls(ident.work_id, None, None, value)

    def identifiers(self) -> list[Identifier]:
        """Every identifier the work is known by."""
        out = []
        if self.doi:
            out.append(Identifier(IdType.DOI, self.doi))
        if self.pmid:
            out.append(Identifier(IdType.PMID, self.pmid))
        if self.pmcid:
            out.append(Identifier(IdType.PMCID, self.pmcid))
        return out

    def merged(self, other: Work) -> Work:
        """This work with the fields `other` knows and this one does not."""
        updates = {
            name: getattr(other, name)
            for name in FIELDS
            if getattr(self, name) is None and getattr(other, name) is not None
        }
        return replace(self, **updates) if updates else self

    def overridden(self, other: Work, names: tuple[str, ...] = METADATA) -> Work:
        """This work with the metadata `other` has (an authority's, a publisher's catalogue)
        replacing its own; identifiers and fields `other` leaves empty stay as they are."""
        updates = {
            name: getattr(other, name)
            for name in names
            if getattr(other, name) is not None and getattr(other, name) != getattr(self, name)
        }
        return replace(self, **updates) if updates else self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the `alm.works` event body)."""
        return {
            "work_id": self.work_id,
            "doi": self.doi,
            "pmid": self.pmid,
            "pmcid": self.pmcid,
            "title": self.title,
            "issued": self.issued.isoformat() if self.issued else None,
            "publisher": self.publisher,
            "canonical_url": self.canonical_url,
            "type": self.type,
            "publisher_id": self.publisher_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Work:
        """Inverse of to_dict."""
        issued = data.get("issued")
        return cls(
            work_id=data["work_id"],
            doi=data.get("doi"),
            pmid=data.get("pmid"),
            pmcid=data.get("pmcid"),
            title=data.get("title"),
            issued=date.fromisoformat(issued) if issued else None,
            publisher=data.get("publisher"),
            canonical_url=data.get("canonical_url"),
            type=data.get("type"),
            publisher_id=data.get("publisher_id"),
        )


@dataclass(frozen=True, slots=True)
class WorkRef:
    """What a fetcher needs to know of a work: its ids (carried in refresh requests)."""

    work_id: str
    doi: str | None = None
    pmid: str | None = None
    pmcid: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, work: Work) -> WorkRef:
        """The reference to `work`."""
        return cls(work.work_id, work.doi, work.pmid, work.pmcid)

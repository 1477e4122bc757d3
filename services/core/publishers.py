"""Publishers (Crossref members) whose catalogues ALM imports, and the port that keeps them with
the state of each import and the index of each publisher's works."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.core.catalogue_state import ImportState, Scope
from services.core.timeutil import from_iso, to_iso
from services.core.works import Work


@dataclass(frozen=True, slots=True)
class Publisher:
    """A Crossref member as `/members/{id}` describes it (ALM's publisher; `member_id` is the
    `publisher_id` of its works)."""

    member_id: str
    name: str
    prefixes: tuple[str, ...] = ()
    other_names: tuple[str, ...] = ()
    location: str | None = None
    works_upstream: int | None = None  # Crossref's `counts.total-dois`
    updated_at: datetime | None = None  # when it was last read from Crossref

    def named(self, name: str) -> bool:
        """Whether `name` is this publisher's name or one of its other names (any case)."""
        wanted = " ".join(name.split()).casefold()
        return any(wanted == n.casefold() for n in (self.name, *self.other_names))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the stores keep, what `alm publishers list --json` prints)."""
        return {
            "member_id": self.member_id,
            "name": self.name,
            "prefixes": list(self.prefixes),
            "other_names": list(self.other_names),
            "location": self.location,
            "works_upstream": self.works_upstream,
            "updated_at": to_iso(self.updated_at) if self.updated_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Publisher:
        """Inverse of to_dict."""
        updated = data.get("updated_at")
        return cls(
            member_id=data["member_id"],
            name=data["name"],
            prefixes=tuple(data.get("prefixes", ())),
            other_names=tuple(data.get("other_names", ())),
            location=data.get("location"),
            works_upstream=data.get("works_upstream"),
            updated_at=from_iso(updated) if updated else None,
        )


class PublisherStore(Protocol):
    """Publishers, the state of their catalogue imports and the index of their works.

    `index_publisher_works` keeps the works of each publisher findable in work-id order (a
    store whose works table is indexed on `publisher_id`, SQLite, has nothing to write); the
    reads check each work's `publisher_id`, so an entry left by a work that changed publisher
    is never served."""

    async def put_publisher(self, publisher: Publisher) -> None: ...

    async def get_publisher(self, member_id: str) -> Publisher | None: ...

    async def list_publishers(self) -> list[Publisher]:
        """Every publisher, by name."""
        ...

    async def put_import(self, state: ImportState) -> None:
        """Store the state of the import of `state.scope` (replacing the previous one)."""
        ...

    async def get_import(self, scope: Scope) -> ImportState | None: ...

    async def list_imports(self) -> list[ImportState]: ...

    async def index_publisher_works(
        self, add: Sequence[tuple[str, str]], remove: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Add and remove (publisher id, work id) entries of the index (idempotent)."""
        ...

    async def publisher_works(self, publisher_id: str, offset: int, limit: int) -> list[Work]:
        """A page of the publisher's works in work-id order."""
        ...

    async def publisher_works_after(
        self, publisher_id: str, after: str | None, limit: int
    ) -> tuple[list[Work], str | None]:
        """A keyset page of the publisher's works: up to `limit` with ids after `after` (from
        the first if None), in work-id order, and the id to go on after (None: none left). As
        cheap deep in a catalogue of millions as at its start (no offset scanned)."""
        ...

    async def count_publisher_works(self, publisher_id: str) -> int: ...

"""Registering works: store them (one work per DOI whatever its spelling) and announce them on
`alm.works`, where the scheduler picks new works up. Used by the CLI, the API and imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.core.events import SCHEMA_VERSION, TOPIC_WORKS
from services.core.identifiers import MAX_INPUT_LENGTH, InvalidIdentifier, parse_identifier
from services.core.ports import Bus, WorkStore
from services.core.schema_check import SchemaViolation, check
from services.core.text import shown
from services.core.timeutil import to_iso
from services.core.works import Work


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """What happened to one submitted identifier."""

    input: str
    work_id: str | None = None
    created: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (the API's per-id result)."""
        if self.error:
            return {"input": self.input, "status": "invalid", "error": self.error}
        return {
            "input": self.input,
            "work_id": self.work_id,
            "status": "created" if self.created else "exists",
        }


def work_event(work: Work, event: str, at: datetime) -> dict[str, object]:
    """The `alm.works` event for `work`."""
    return dict(
        check(
            "work",
            {
                "schema_version": SCHEMA_VERSION,
                "work_id": work.work_id,
                "event": event,
                "at": to_iso(at),
                "work": work.to_dict(),
            },
        )
    )


async def register(
    raw_ids: Sequence[str], store: WorkStore, bus: Bus, now: datetime
) -> list[RegisterResult]:
    """Register every valid id (duplicates collapse to one work); invalid ones get an error.

    Every id is validated completely, its `alm.works` event included, before anything is
    written: an id is either refused up front or registered and announced."""
    results: list[RegisterResult] = []
    works: list[tuple[int, Work]] = []
    for raw in raw_ids:
        try:
            work = Work.from_identifier(parse_identifier(raw))
            work_event(work, "registered", now)
        except (InvalidIdentifier, SchemaViolation) as exc:
            results.append(RegisterResult(shown(raw, MAX_INPUT_LENGTH), error=str(exc)))
            continue
        works.append((len(results), work))
        results.append(RegisterResult(raw))
    registrations = await store.register([w for _, w in works])
    events = []
    seen: set[str] = set()
    for (index, _), reg in zip(works, registrations, strict=True):
        created = reg.created and reg.work.work_id not in seen
        seen.add(reg.work.work_id)
        results[index] = RegisterResult(results[index].input, reg.work.work_id, created)
        if created:
            events.append((reg.work.work_id, work_event(reg.work, "registered", now)))
    await bus.publish(TOPIC_WORKS, events)
    return results

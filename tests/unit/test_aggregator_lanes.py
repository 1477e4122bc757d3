"""The faust agent's lanes: observations split by work, each work's in its arrival order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.aggregator.agents import lanes
from services.core.events import Observation, Status

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_works_observations_stay_in_one_lane_in_order() -> None:
    observations = [
        Observation(f"10.1/w.{i % 7}", "crossref", T0 + timedelta(seconds=i), Status.OK, {})
        for i in range(70)
    ]
    split = lanes(observations, 3)
    assert sorted((o.work_id, o.retrieved_at) for lane in split for o in lane) == sorted(
        (o.work_id, o.retrieved_at) for o in observations
    )
    for lane in split:
        for work in {o.work_id for o in lane}:
            mine = [o.retrieved_at for o in lane if o.work_id == work]
            assert mine == [o.retrieved_at for o in observations if o.work_id == work]
    homes = [{i for i, lane in enumerate(split) if any(o.work_id == w for o in lane)} for w in
             {o.work_id for o in observations}]  # fmt: skip
    assert all(len(h) == 1 for h in homes)
    assert sum(1 for lane in split if lane) > 1  # spread, not all in one
    assert lanes(observations, 1) == [observations]

"""PubMed Central cited-by plug-in: ID converter batches, then one ELink call by id."""

from __future__ import annotations

import json

from services.core.sources import SourceConfig
from services.fetchers.base import Failed, Found, UpstreamRequest
from services.fetchers.sources.pubmed import BATCH, IDCONV, PubMed
from tests.unit.sources_kit import fixture, kind, outcomes, record, response, work

SOURCE = PubMed()
CONFIG = SourceConfig(contact_email="ops@example.org", api_key="ncbi-key")
PEERJ, NATURE, JD = (
    work("10.7717/peerj.4375"),
    work("10.1038/s41586-023-06139-9"),
    work("10.1108/jd-12-2013-0166"),
)


def linkset(pmid: int) -> dict[str, object]:
    """The recorded ELink linkset of `pmid`."""
    loaded: dict[str, object] = json.loads(fixture("pubmed", f"linksets/{pmid}.json"))
    return loaded


def idconv_then_elink() -> tuple[UpstreamRequest, tuple[UpstreamRequest, ...], dict[str, str]]:
    """Run the converter step for three works; return its call, follow-ups and outcome kinds."""
    [call] = SOURCE.requests([PEERJ, NATURE, JD], CONFIG)
    records = [record("pubmed", PEERJ.doi or ""), record("pubmed", NATURE.doi or "")]
    records.append({"requested-id": JD.doi, "status": "error", "errmsg": "invalid article id"})
    got, more = outcomes(SOURCE, call, response(200, {"status": "ok", "records": records}))
    return call, more, {k: kind(v) for k, v in got.items()}


def test_converter_call_batches_dois_with_idtype_tool_and_email() -> None:
    """One converter call for up to 200 DOIs on the new host, idtype=doi, tool and email."""
    call, _, _ = idconv_then_elink()
    params = dict(call.params)
    assert (call.host, call.path) == (IDCONV, "/articles/")
    assert params["ids"] == ",".join(w.doi or "" for w in (PEERJ, NATURE, JD))
    assert (params["idtype"], params["format"], params["tool"], params["email"]) == (
        "doi",
        "json",
        "alm",
        "ops@example.org",
    )
    assert SOURCE.batch_size == BATCH == 200


def test_converter_records_lead_to_one_elink_call_by_id() -> None:
    """PMIDs found become one ELink call with an `id` per PMID; the rest are not found."""
    _, (elink,), kinds = idconv_then_elink()
    assert kinds == {JD.work_id: "not_found"}
    params = list(elink.params)
    assert ("linkname", "pubmed_pubmed_citedin") in params
    assert [v for k, v in params if k == "id"] == ["29456894", "37258680"]
    assert ("api_key", "ncbi-key") in params and ("email", "ops@example.org") in params
    assert elink.context == {"29456894": PEERJ.work_id, "37258680": NATURE.work_id}


def test_known_pmid_skips_the_converter() -> None:
    """A work that already has a PMID goes straight to ELink."""
    [call] = SOURCE.requests([work("10.1/x", pmid="16060722")], CONFIG)
    assert call.step == "elink" and ("id", "16060722") in call.params


def test_linksets_give_counts_and_pubmed_events() -> None:
    """Each linkset's citedin links are the count and events; no linksetdbs is zero."""
    _, (elink,), _ = idconv_then_elink()
    body = {
        "header": {"type": "elink", "version": "0.3"},
        "linksets": [linkset(29456894), {"dbfrom": "pubmed", "ids": ["37258680"]}],
    }
    got, _ = outcomes(SOURCE, elink, response(200, body))
    peerj, nature = got[PEERJ.work_id], got[NATURE.work_id]
    assert isinstance(peerj, Found) and isinstance(nature, Found)
    assert (peerj.metrics, nature.metrics) == ({"citations": 5}, {"citations": 0})
    assert peerj.events[0].event_id == "pmid:38012345"
    assert peerj.events[0].url == "https://pubmed.ncbi.nlm.nih.gov/38012345/"
    assert peerj.meta == {"pmid": "29456894"}


def test_scored_link_objects_are_read_too() -> None:
    """Links given as {"id": ...} objects (cmd=neighbor_score form) count like plain ids."""
    _, (elink,), _ = idconv_then_elink()
    dbs = [
        {
            "dbto": "pubmed",
            "linkname": "pubmed_pubmed_citedin",
            "links": [{"id": "1", "score": 9}, "2", "2"],
        }
    ]
    body = {"linksets": [{"dbfrom": "pubmed", "ids": ["29456894"], "linksetdbs": dbs}]}
    got, _ = outcomes(SOURCE, elink, response(200, body))
    found = got[PEERJ.work_id]
    assert isinstance(found, Found) and found.metrics == {"citations": 2}


def test_errors_inside_200() -> None:
    """ELink's {"ERROR": ...} and the converter's status "error" in a 200 fail the call."""
    call, (elink,), _ = idconv_then_elink()
    got, _ = outcomes(
        SOURCE, elink, response(200, fixture("pubmed", "errors/elink-error-in-200.json"))
    )
    assert {kind(o) for o in got.values()} == {"failed:http"}
    bad = fixture("pubmed", "errors/idconv-error-in-200.json")
    got, more = outcomes(SOURCE, call, response(200, bad))
    assert {kind(o) for o in got.values()} == {"failed:http"} and more == ()


def test_missing_idtype_answer_is_a_refused_call() -> None:
    """The converter's 400 for ids it reads as PMIDs, on a call that names its idtype, refuses
    the call as sent: a non-retryable failure of the source (counted toward pausing it), not of
    the identifiers (which bisecting the call would only repeat)."""
    call, _, _ = idconv_then_elink()
    got, _ = outcomes(
        SOURCE, call, response(400, fixture("pubmed", "errors/idconv-missing-idtype.json"))
    )
    assert {kind(o) for o in got.values()} == {"failed:refused_call"}
    assert all(isinstance(o, Failed) and not o.error.retryable for o in got.values())

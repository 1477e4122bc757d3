"""API keys' pure parts: the key form, its digest, the checks of names, addresses and rates,
and the token buckets of quotas."""

from __future__ import annotations

import json
import re
from dataclasses import astuple
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.api.docs import OPENAPI_PATH
from services.core.keys import (
    FORBIDDEN,
    InvalidField,
    Role,
    check_email,
    check_name,
    digest,
    issue,
    key_id_of,
    new_secret_key,
    parse_key_rate,
    record_of,
    split_key,
)
from services.core.quota import Buckets, Rate, parse_rate

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
KEY = re.compile(r"alm_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def test_a_new_key_has_the_documented_form_and_only_its_digest_is_kept() -> None:
    """`alm_<12 hex>_<43 base64url>`; the record holds the SHA-256 digest of id and secret,
    and neither the record's fields nor its repr nor what may be shown contain the secret."""
    record, key = issue("site", Role.READER, NOW)
    assert KEY.fullmatch(key)
    key_id, secret = key.split("_", 2)[1:]
    assert record.key_id == key_id
    assert record.secret_hash == digest(key_id, secret)
    assert len(record.secret_hash) == 64
    for text in (repr(record), json.dumps(record.shown()), *map(str, astuple(record))):
        assert secret not in text
    assert "secret_hash" not in record.shown() and record.secret_hash not in repr(record)


def test_keys_are_random_and_digests_differ() -> None:
    """Two keys never share an id or a secret; the digest depends on both."""
    keys = {new_secret_key() for _ in range(200)}
    assert len({k.split("_")[1] for k in keys}) == 200
    assert digest("a" * 12, "s") != digest("b" * 12, "s") != digest("a" * 12, "t")


def test_matching_takes_only_the_right_secret() -> None:
    """The right secret matches; any other (one character off, empty, another key's) does not."""
    record, key = issue("site", Role.ADMIN, NOW)
    _, secret = split_key(key) or ("", "")
    assert record.matches(secret)
    assert not record.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert not record.matches("")
    assert not record.matches(split_key(new_secret_key())[1])  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alm_",
        "alm_0123456789ab",
        "alm_0123456789AB_" + "a" * 43,  # upper-case id
        "alm_0123456789ab_" + "a" * 42,
        "alm_0123456789ab_" + "a" * 44,
        "alm_0123456789ab_" + "a" * 42 + "=",
        "ALM_0123456789ab_" + "a" * 43,
        "rkfDr76z75benY3pytM1",
        " alm_0123456789ab_" + "a" * 43,
    ],
)
def test_anything_but_the_key_form_is_no_key(text: str) -> None:
    """Malformed keys split to nothing (and are refused as wrong keys without a lookup)."""
    assert split_key(text) is None


def test_key_id_of_takes_an_id_or_a_whole_key() -> None:
    """`alm keys revoke` takes the id or the whole key."""
    key = new_secret_key()
    assert key_id_of(key) == key_id_of(key.split("_")[1]) == key.split("_")[1]
    assert key_id_of("nope") is None


def test_record_of_refuses_a_malformed_key() -> None:
    """A bootstrap key that is not in the key form is refused, and not repeated back."""
    with pytest.raises(InvalidField) as refused:
        record_of("secret-value-123", "x", Role.ADMIN, NOW)
    assert "secret-value-123" not in str(refused.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Jane Doe", "Jane Doe"),
        ("  Müller & Söhne  ", "Müller & Söhne"),
        ("x" * 100, "x" * 100),
        ("<b>journal</b>", "<b>journal</b>"),  # stored as text; never rendered unescaped
        ("", None),
        ("   ", None),
        ("x" * 101, None),
        (" " + "x" * 100, None),  # counted before the spaces are cut, as the document says
        ("a\nb", None),
        ("a\x00", None),
        ("a\x1b[31m", None),
        ("a\u202eb", None),
        ("a\u200bb", None),
        ("a\u2028b", None),
        ("\ufeffa", None),
    ],
)
def test_names(name: str, expected: str | None) -> None:
    """Names: not blank, at most 100 characters, no controls, breaks or invisible formatting."""
    if expected is None:
        with pytest.raises(InvalidField) as refused:
            check_name(name)
        assert "'name'" in str(refused.value)
    else:
        assert check_name(name) == expected


NAME_PATTERN = json.loads(OPENAPI_PATH.read_text())["components"]["schemas"]["SignupRequest"][
    "properties"
]["name"]["pattern"]
# the document's regex is ECMA-262's, where `$` is the end of the text only; Python's `$` also
# matches before a final line break, so it is read here as \Z
PYTHON_NAME_PATTERN = NAME_PATTERN.removesuffix("$") + r"\Z"


@given(st.text(max_size=100))
@example("0\n")
def test_the_documented_name_pattern_is_the_check(name: str) -> None:
    """The OpenAPI document's name pattern accepts exactly the names check_name accepts."""
    try:
        check_name(name)
        accepted = True
    except InvalidField:
        accepted = False
    assert NAME_PATTERN.endswith("$")
    assert bool(re.search(PYTHON_NAME_PATTERN, name)) is accepted, repr(name)


def test_forbidden_characters_are_the_documented_ones() -> None:
    """A spot check of the class both share: controls and invisible formatting, not letters."""
    assert all(FORBIDDEN.search(c) for c in "\x00\x1f\x7f\x85\x9f\u200b\u200f\u2028\u202e\ufeff")
    assert not any(FORBIDDEN.search(c) for c in "aé漢 \u00a0\u00ad&<>")


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("jane@example.org", "jane@example.org"),
        ("Jane.Doe+alm@Sub.Example.ORG", "Jane.Doe+alm@sub.example.org"),
        ("ü@bücher.de", "ü@bücher.de"),
        ("a@x.xn--p1ai", "a@x.xn--p1ai"),
        ("a" * 64 + "@example.org", "a" * 64 + "@example.org"),
        ("a" * 65 + "@example.org", None),
        ("a@" + "b" * 250 + ".org", None),
        ("jane", None),
        ("jane@localhost", None),
        ("jane@@example.org", None),
        ("ja ne@example.org", None),
        (" jane@example.org", None),
        ("<script>@example.org", None),
        ('"jane"@example.org', None),
        ("jane@-example.org", None),
        ("jane@exa_mple.org", None),
        ("jane@example.o", None),
        ("jane@1.2.3.4", None),
        ("jane@example.org\n", None),
        ("", None),
    ],
)
def test_email_addresses(email: str, expected: str | None) -> None:
    """An address of the name@example.org shape, bounded, without spaces or markup; the error
    never repeats the address."""
    if expected is None:
        with pytest.raises(InvalidField) as refused:
            check_email(email)
        assert email.strip() == "" or email not in str(refused.value)
    else:
        assert check_email(email) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("600", 600),
        ("600/min", 600),
        ("10 / s", 600),
        ("unlimited", 0),
        ("0", 0),
        ("1000000/min", 1_000_000),
        ("1000001/min", None),
        ("5/h", None),
        ("-1", None),
        ("lots", None),
        ("1.5/min", None),
    ],
)
def test_key_rates(text: str, expected: int | None) -> None:
    """`--rate`: requests a minute from N/min, N/s, N or unlimited."""
    if expected is None:
        with pytest.raises(InvalidField):
            parse_key_rate(text)
    else:
        assert parse_key_rate(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("120", Rate(120, 60)),
        ("5/h", Rate(5, 3600)),
        ("3/s", Rate(3, 1)),
        ("100/day", Rate(100, 86400)),
        ("unlimited", None),
    ],
)
def test_setting_rates(text: str, expected: Rate | None) -> None:
    """ALM_API_RATE_*: N/s, N/min, N/h, N/d, N (a minute) or unlimited."""
    assert parse_rate(text) == expected
    if expected is not None:
        assert parse_rate(str(expected)) == expected


def test_a_bucket_allows_a_burst_then_its_rate() -> None:
    """3/min: three at once, the fourth refused with Retry-After 20 s; one more every 20 s."""
    buckets, rate = Buckets(), Rate(3, 60)
    verdicts = [buckets.take("k", rate, 0.0) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert verdicts[3].retry_after == 20 and verdicts[3].reset == 60
    assert verdicts[3].headers()["Retry-After"] == "20"
    assert "Retry-After" not in verdicts[0].headers()
    assert not buckets.take("k", rate, 19.0).allowed
    assert buckets.take("k", rate, 20.0).allowed
    assert buckets.take("other", rate, 20.0).remaining == 2


def test_a_refused_request_spends_nothing() -> None:
    """Hammering a spent bucket does not push the next allowed request further away."""
    buckets, rate = Buckets(), Rate(1, 10)
    assert buckets.take("k", rate, 0.0).allowed
    for t in range(1, 10):
        assert not buckets.take("k", rate, float(t)).allowed
    assert buckets.take("k", rate, 10.0).allowed


def test_a_changed_rate_applies_to_the_bucket() -> None:
    """A key whose rate is lowered is held to the new one at once."""
    buckets = Buckets()
    assert buckets.take("k", Rate(100, 60), 0.0).remaining == 99
    lowered = buckets.take("k", Rate(2, 60), 0.0)
    assert lowered.limit == 2 and lowered.remaining == 1


def test_buckets_stay_bounded() -> None:
    """Idle buckets that are full again are dropped; past the cap the least recent goes."""
    buckets, rate = Buckets(max_buckets=100), Rate(2, 1)
    for n in range(1000):
        buckets.take(f"a{n}", rate, n * 0.001)
    assert len(buckets) == 100
    buckets.take("late", rate, 100.0)  # every other bucket is full again by now
    assert len(buckets) == 1
    assert buckets.has_left("late", 100.0) and buckets.has_left("never-seen", 100.0)

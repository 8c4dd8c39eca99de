"""core.untrusted_json: what plain json.loads lets through as a crash (deep nesting, bytes that are not
UTF-8, lone surrogates) is one UntrustedJsonError line; every valid document comes back unchanged."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.untrusted_json import UntrustedJsonError, loads_untrusted

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "body: JSON nested too deeply"),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "body: JSON nested too deeply"),
        (b'{"id": "\xff"}', "body: not UTF-8 text"),
        (b'{"id": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"\\udfff": 1}', "lone UTF-16 surrogate"),  # in a key too
        (b'[["x", ["\\uDBFF"]]]', "lone UTF-16 surrogate"),  # upper-case hex, nested
        (b'{"inputs": [', "body: not valid JSON: Expecting value at line 1 column 13"),
    ],
    ids=["nested-lists", "nested-objects", "not-utf8", "surrogate", "surrogate-key", "surrogate-deep", "cut"],
)
def test_unusable_bodies_are_one_line_errors(body: bytes, fragment: str) -> None:
    with pytest.raises(UntrustedJsonError) as caught:
        loads_untrusted(body, "body")
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_a_surrogate_pair_is_one_character_not_an_error() -> None:
    assert loads_untrusted(b'{"emoji": "\\ud83d\\ude00"}', "body") == {"emoji": "\U0001f600"}


@given(JSON_VALUES)
def test_valid_documents_decode_as_json_does(value) -> None:
    text = json.dumps(value)
    assert loads_untrusted(text.encode(), "body") == json.loads(text)

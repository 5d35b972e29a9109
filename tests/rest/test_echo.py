"""How much of an input an error answer quotes, and error bodies that always encode."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from twinplane.rest.echo import ECHO_LIMIT, bounded, clip, quote, utf8_size


def test_short_text_is_kept_and_long_text_keeps_head_tail_and_size() -> None:
    """Up to the limit text is unchanged; beyond it, head … (N bytes) … tail."""
    assert clip("thermo-1") == "thermo-1"
    text = "a" * 1000 + "é" * 10 + "z" * 100
    clipped = clip(text)
    assert clipped.startswith("a" * (ECHO_LIMIT * 3 // 4) + " … ")
    assert clipped.endswith(" … " + "z" * (ECHO_LIMIT // 4))
    assert f"({utf8_size(text)} bytes)" in clipped
    assert utf8_size(text) == 1000 + 20 + 100


def test_lone_surrogates_become_escapes() -> None:
    r"""A lone surrogate is written as \udXXX, so the text encodes."""
    assert clip("a\ud800b") == "a\\ud800b"
    assert quote("a\udc80") == "'a\\udc80'"
    assert quote("x" * 10_000).startswith("'xxx")
    assert len(quote("x" * 10_000)) < ECHO_LIMIT + 40


@given(st.text(alphabet=st.characters(), max_size=3000), st.integers(8, 500))
def test_clip_is_bounded_and_always_encodes(text: str, limit: int) -> None:
    """Whatever the text (surrogates included), the clip is short and valid UTF-8."""
    clipped = clip(text, limit)
    clipped.encode("utf-8")
    quote(text, limit).encode("utf-8")
    assert len(clipped) <= 6 * (limit + 40)  # whatever the input's size; an escape is 6 chars
    if len(text) <= limit:
        assert clipped.encode("utf-8", "backslashreplace") == text.encode(
            "utf-8", "backslashreplace"
        )


def test_bounded_clips_every_string_of_a_body_keys_too() -> None:
    """A body with a 15 MiB message, a surrogate key and nested lists encodes small."""
    big = "m" * (15 * 2**20)
    body = {"message": big, "details": {"causes": [{"field": "\ud800", "message": big}]}, "n": 3}
    out = bounded(body)
    data = msgspec.json.encode(out)
    assert len(data) < 10_000
    assert json.loads(data)["n"] == 3
    assert json.loads(data)["details"]["causes"][0]["field"] == "\\ud800"

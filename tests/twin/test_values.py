"""Values: parsing text into typed values and the canonical string form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from twinplane.errors import SpecError, ValueTypeError
from twinplane.twin import canonical, is_kubeedge_safe

from .engine_strategies import same_outcome, values

pytestmark = pytest.mark.engine


@st.composite
def typed_texts(draw: st.DrawFn) -> tuple[str, str]:
    """A property type and a text to read as it: a value's own spellings, or any text."""
    ty = draw(st.sampled_from(ref.TYPES))
    value = draw(values(ty))
    spellings = [ref.canonical(ty, value)]
    if isinstance(value, float):
        spellings += [repr(value), f"{value:e}", f" {value!r}\t"]
    elif isinstance(value, int) and not isinstance(value, bool):
        spellings += [f"+{value}", f"{value}.0", f"{value:e}"]
    elif isinstance(value, bool):
        spellings += [str(value), str(int(value)), str(value).upper()]
    elif isinstance(value, bytes):
        spellings += [value.hex().upper(), f" {value.hex()} "]
    noise = st.one_of(
        st.text(max_size=8),
        st.from_regex(r"\s*[+-]?[0-9_.]{0,6}(e[+-]?[0-9]{1,3})?\s*", fullmatch=True),
        st.sampled_from(["nan", "-inf", "Infinity", "1_000", "0x10", "\uff11\uff12", "truE", "00"]),
    )
    return ty, draw(st.one_of(st.sampled_from(spellings), noise))


@given(typed_texts())
def test_canonical_matches_reference(case: tuple[str, str]) -> None:
    """canonical(type, text) parses and formats exactly as the reference, or both reject it."""
    ty, text = case
    outcome = same_outcome(
        lambda: canonical(ty, text),  # type: ignore[arg-type]  # ty is a PropertyTypeName
        lambda: ref.canonical(ty, ref.parse_value(ty, text)),
    )
    if outcome is not None:
        got, want = outcome
        assert got == want


@given(st.sampled_from(ref.TYPES).flatmap(lambda ty: st.tuples(st.just(ty), values(ty))))
def test_every_canonical_string_is_kubeedge_safe(case: tuple[str, ref.Value]) -> None:
    """Every canonical string stays inside KubeEdge's twin value characters."""
    ty, value = case
    text = ref.canonical(ty, value)
    assert is_kubeedge_safe(text)
    assert ref.is_kubeedge_safe(text)
    if ty != "STRING":  # a STRING's canonical text is not user text; it unescapes instead
        assert canonical(ty, text) == text  # type: ignore[arg-type]
    assert ref.parse_canonical(ty, text) == value or (
        isinstance(value, float) and math.isnan(value)
    )


@given(st.one_of(st.text(), st.from_regex(r"[a-zA-Z0-9\-_.,:/@#]*", fullmatch=True)))
def test_is_kubeedge_safe_matches_reference(text: str) -> None:
    """is_kubeedge_safe accepts exactly KubeEdge's characters [a-zA-Z0-9-_.,:/@#]."""
    assert is_kubeedge_safe(text) == ref.is_kubeedge_safe(text)


@pytest.mark.parametrize(
    ("ty", "text", "want"),
    [
        ("INT", " -42 ", "-42"),
        ("INT", "3.0", "3"),
        ("FLOAT", "0.1", "0.1"),
        ("FLOAT", "1710678.75", "1710678.8"),  # a tie between two shortest forms: the larger
        ("FLOAT", "1e39", "inf"),
        ("DOUBLE", "1e21", "1000000000000000000000"),
        ("DOUBLE", "-0", "-0"),
        ("DOUBLE", "nan", "NaN"),
        ("BOOLEAN", "TRUE", "true"),
        ("BOOLEAN", "0", "false"),
        ("STRING", "a b#c/ä", "a#20b#23c/#C3#A4"),
        ("BYTES", "00FF", "00ff"),
    ],
)
def test_canonical_examples(ty: str, text: str, want: str) -> None:
    """Canonical forms of a few documented examples."""
    assert canonical(ty, text) == want  # type: ignore[arg-type]
    assert ref.canonical(ty, ref.parse_value(ty, text)) == want


@pytest.mark.parametrize(
    ("alias", "ty"), [("integer", "INT"), ("Bool", "BOOLEAN"), ("STREAM", "STRING")]
)
def test_property_type_aliases(alias: str, ty: str) -> None:
    """Property types are read in any case, with INTEGER, BOOL and STREAM as aliases."""
    assert canonical(alias, "1") == canonical(ty, "1")  # type: ignore[arg-type]


def test_unknown_property_type_is_a_spec_error() -> None:
    """An unknown property type raises SpecError naming the field ``type``."""
    with pytest.raises(SpecError) as info:
        canonical("LONG", "1")  # type: ignore[arg-type]
    assert info.value.path == "type"


@pytest.mark.parametrize(("ty", "text"), [("INT", "1.5"), ("BOOLEAN", "yes"), ("BYTES", "abc")])
def test_wrong_text_is_a_value_type_error(ty: str, text: str) -> None:
    """Text that is not a value of the type raises ValueTypeError naming the expected type."""
    with pytest.raises(ValueTypeError) as info:
        canonical(ty, text)  # type: ignore[arg-type]
    assert info.value.expected == ty

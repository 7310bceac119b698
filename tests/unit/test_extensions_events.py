"""RotationEvent carries metadata only: no field can hold a secret value, and the facade checks."""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import types
import typing

import pytest

from kernel.extensions import RotationEvent, Veto, new_trace_id
from kernel.extensions.events import check_metadata_only
from kernel.secret_value import SecretValue
from tests.unit.extensions_support import Recorder, facade_with, make_event

ALLOWED_TYPES = {str, bool, float, type(None), tuple[str, ...], collections.abc.Mapping[str, str]}


def _parts(hint: object) -> set[object]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set(typing.get_args(hint))
    return {hint}


def test_no_field_is_typed_to_hold_a_secret_value_or_bytes() -> None:
    hints = typing.get_type_hints(RotationEvent)
    for spec in dataclasses.fields(RotationEvent):
        hint = hints[spec.name]
        assert _parts(hint) <= ALLOWED_TYPES, f"{spec.name}: {hint}"
        assert "SecretValue" not in str(hint) and "bytes" not in str(hint)
        assert hint is not typing.Any and hint is not object


@pytest.mark.parametrize(
    "changes",
    [
        {"target": SecretValue("s3cret")},
        {"error": SecretValue("s3cret")},
        {"old_container": SecretValue("s3cret")},
        {"references": (SecretValue("s3cret"),)},
        {"versions": {"dso://a": SecretValue("s3cret")}},
        {"fingerprints": {"dso://a": b"raw-bytes"}},
        {"error": b"raw-bytes"},
        {"started_at": "yesterday"},
        {"trace_id": ""},
    ],
    ids=lambda c: next(iter(c)),
)
def test_construction_refuses_anything_but_metadata(changes: dict[str, object]) -> None:
    with pytest.raises(TypeError) as info:
        make_event(**changes)
    assert "s3cret" not in str(info.value)


def test_the_facade_refuses_an_event_that_was_tampered_with(canary: str) -> None:
    recorder = Recorder()
    extensions = facade_with(("recorder", recorder))
    event = make_event()
    object.__setattr__(event, "error", SecretValue(canary))  # bypassing the constructor
    for call in (extensions.planned, extensions.before_swap, extensions.completed):
        with pytest.raises(TypeError, match="never receive secret values") as info:
            call(event)
        assert canary not in str(info.value)
    assert recorder.calls == []
    with pytest.raises(TypeError):
        extensions.after_swap("not an event")  # type: ignore[arg-type]


def test_collections_are_frozen_and_normalised() -> None:
    event = make_event(references=["a", "b"], versions={"a": "1"})
    assert event.references == ("a", "b")
    with pytest.raises(TypeError):
        event.versions["a"] = "2"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.target = "other"  # type: ignore[misc]


def test_evolve_stamps_the_time_and_keeps_the_trace() -> None:
    event = make_event()
    later = event.evolve(step="swap", new_container="new456")
    assert later.trace_id == event.trace_id
    assert (later.step, later.new_container) == ("swap", "new456")
    assert later.occurred_at > event.occurred_at
    assert later.duration == pytest.approx(later.occurred_at - event.started_at)
    check_metadata_only(later)


def test_to_json_is_plain_data_with_every_field() -> None:
    doc = make_event().to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc) == {f.name for f in dataclasses.fields(RotationEvent)} | {"duration"}
    assert doc["duration"] == 1.5


def test_trace_ids_are_w3c_shaped_and_unique() -> None:
    ids = {new_trace_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_veto_reads_well() -> None:
    assert str(Veto("freeze", "change freeze")) == "vetoed by extension 'freeze': change freeze"

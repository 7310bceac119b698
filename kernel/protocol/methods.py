"""Typed payloads of the Protocol 1 methods, with builders and strict parsers for both sides.

The kernel builds params with :func:`refs_params` & co. and parses answers with
``GetResult.from_wire`` & co.; the provider SDK parses params with :func:`parse_refs` & co. and
builds answers with ``to_wire``. Every parser raises :class:`ProtocolError` naming the field.
Unknown keys in a map are ignored (room for optional additions within Protocol 1); known keys
must have the documented type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kernel.protocol.codes import ErrorCode
from kernel.protocol.messages import (
    WireError,
    expect_map,
    expect_str,
    expect_time,
    fail,
    type_name,
)

#: Bounds on identifier-like strings; values are bounded by the frame size only.
MAX_ID_LEN = 256
MAX_PATH_LEN = 4096
MAX_VERSION_LEN = 1024

#: What the kernel reports for a reference a batch answer left out.
MISSING_ANSWER = "the provider gave no answer for this reference"


@dataclass(frozen=True, slots=True)
class SecretRef:
    """One secret reference in a batch. ``id`` is the kernel's label for it, unique in the
    request, and keys the answer maps; ``path``/``field``/``version`` mean what the provider
    documents (``version`` None = current)."""

    id: str
    path: str
    field: str | None = None
    version: str | None = None

    def to_wire(self) -> dict[str, str]:
        doc = {"id": self.id, "path": self.path}
        if self.field is not None:
            doc["field"] = self.field
        if self.version is not None:
            doc["version"] = self.version
        return doc

    @classmethod
    def from_wire(cls, value: object, where: str = "ref") -> SecretRef:
        doc = expect_map(value, where)
        field_ = doc.get("field")
        version = doc.get("version")
        return cls(
            expect_str(doc.get("id"), f"{where}.id", max_len=MAX_ID_LEN),
            expect_str(doc.get("path"), f"{where}.path", max_len=MAX_PATH_LEN),
            None if field_ is None else expect_str(field_, f"{where}.field", max_len=MAX_PATH_LEN),
            None
            if version is None
            else expect_str(version, f"{where}.version", max_len=MAX_VERSION_LEN),
        )


@dataclass(frozen=True, slots=True)
class SecretData:
    """A secret value with its version id. The value is left out of ``repr``."""

    value: bytes = field(repr=False)
    version: str


@dataclass(frozen=True, slots=True)
class GetResult:
    """Answer to ``get``: each requested id is in exactly one of ``values`` and ``errors``."""

    values: Mapping[str, SecretData] = field(default_factory=dict)
    errors: Mapping[str, WireError] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "values": {k: {"value": v.value, "version": v.version} for k, v in self.values.items()},
            "errors": {k: e.to_wire() for k, e in self.errors.items()},
        }

    @classmethod
    def from_wire(cls, result: object, ids: Iterable[str]) -> GetResult:
        """Parse a ``get`` answer to a request for ``ids``; missing ids become ``internal``."""
        doc = expect_map(result, "get result")
        values: dict[str, SecretData] = {}
        for ref_id, item in expect_map(doc.get("values", {}), "get result.values").items():
            where = f"get result.values[{ref_id!r:.40}]"
            entry = expect_map(item, where)
            value = entry.get("value")
            if type(value) is not bytes:
                fail(f"{where}.value must be bin, got {type_name(value)}")
            version = expect_str(entry.get("version"), f"{where}.version", max_len=MAX_VERSION_LEN)
            values[ref_id] = SecretData(value, version)
        errors = _parse_errors(doc.get("errors", {}), "get result.errors")
        _check_ids(values.keys(), errors, ids, "get")
        return cls(values, errors)


@dataclass(frozen=True, slots=True)
class VersionsResult:
    """Answer to ``versions``: version ids only, no values."""

    versions: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, WireError] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "versions": dict(self.versions),
            "errors": {k: e.to_wire() for k, e in self.errors.items()},
        }

    @classmethod
    def from_wire(cls, result: object, ids: Iterable[str]) -> VersionsResult:
        """Parse a ``versions`` answer to a request for ``ids``; missing ids become ``internal``."""
        doc = expect_map(result, "versions result")
        versions = {
            ref_id: expect_str(v, f"versions result.versions[{ref_id!r:.40}]", max_len=1024)
            for ref_id, v in expect_map(doc.get("versions", {}), "versions result.versions").items()
        }
        errors = _parse_errors(doc.get("errors", {}), "versions result.errors")
        _check_ids(versions.keys(), errors, ids, "versions")
        return cls(versions, errors)


@dataclass(frozen=True, slots=True)
class Changed:
    """The ``changed`` notification: watched reference ids and/or paths whose secret changed."""

    refs: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"refs": list(self.refs), "paths": list(self.paths)}

    @classmethod
    def from_wire(cls, params: object) -> Changed:
        doc = expect_map(params, "changed params")
        refs = _str_list(doc.get("refs", []), "changed params.refs")
        paths = _str_list(doc.get("paths", []), "changed params.paths")
        if not refs and not paths:
            fail("changed notification names no refs and no paths")
        return cls(tuple(refs), tuple(paths))


def _parse_errors(value: object, where: str) -> dict[str, WireError]:
    return {
        ref_id: WireError.from_wire(item, f"{where}[{ref_id!r:.40}]")
        for ref_id, item in expect_map(value, where).items()
    }


def _check_ids(
    answered: Iterable[str], errors: dict[str, WireError], ids: Iterable[str], method: str
) -> None:
    wanted = set(ids)
    ok = set(answered)
    for ref_id in ok | errors.keys():
        if ref_id not in wanted:
            fail(f"{method} answer names reference id {ref_id!r:.40} that was not requested")
    both = ok & errors.keys()
    if both:
        fail(f"{method} answer has both a value and an error for id {min(both)!r:.40}")
    for ref_id in wanted - ok - errors.keys():
        errors[ref_id] = WireError(ErrorCode.INTERNAL, MISSING_ANSWER)


def _str_list(value: object, where: str) -> list[str]:
    if type(value) is not list:
        fail(f"{where} must be an array, got {type_name(value)}")
    return [expect_str(item, f"{where}[{i}]", max_len=MAX_PATH_LEN) for i, item in enumerate(value)]


# -- params: kernel builds, provider parses ---------------------------------------------------


def configure_params(settings: Mapping[str, Any], deadline: float) -> dict[str, Any]:
    """Params of ``configure``: the provider's ``settings`` map from dso.yaml."""
    return {"settings": dict(settings), "deadline": deadline}


def refs_params(refs: Iterable[SecretRef], deadline: float) -> dict[str, Any]:
    """Params of ``get``, ``versions`` and ``watch``."""
    return {"refs": [ref.to_wire() for ref in refs], "deadline": deadline}


def list_params(prefix: str | None, deadline: float) -> dict[str, Any]:
    """Params of ``list``; no prefix lists everything the provider can see."""
    params: dict[str, Any] = {"deadline": deadline}
    if prefix is not None:
        params["prefix"] = prefix
    return params


def deadline_params(deadline: float) -> dict[str, Any]:
    """Params of ``ping`` and ``shutdown``: only the deadline."""
    return {"deadline": deadline}


def parse_deadline(params: Mapping[str, Any]) -> float:
    """The absolute deadline (unix epoch seconds) every request carries."""
    if "deadline" not in params:
        fail("request params have no deadline")
    return expect_time(params["deadline"], "params.deadline")


def parse_refs(params: Mapping[str, Any]) -> tuple[SecretRef, ...]:
    """The ``refs`` array of ``get``/``versions``/``watch``; ids must be unique."""
    value = params.get("refs")
    if type(value) is not list:
        fail(f"params.refs must be an array, got {type_name(value)}")
    refs = tuple(SecretRef.from_wire(item, f"params.refs[{i}]") for i, item in enumerate(value))
    if len({ref.id for ref in refs}) != len(refs):
        fail("params.refs has duplicate ids")
    return refs


def parse_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``settings`` map of ``configure`` (absent means empty)."""
    return expect_map(params.get("settings", {}), "params.settings")


def parse_prefix(params: Mapping[str, Any]) -> str | None:
    """The optional ``prefix`` of ``list``."""
    prefix = params.get("prefix")
    if prefix is None:
        return None
    if type(prefix) is not str:
        fail(f"params.prefix must be a string, got {type_name(prefix)}")
    return prefix


# -- simple results ---------------------------------------------------------------------------


def parse_list_result(result: object) -> list[str]:
    """The ``names`` of a ``list`` answer."""
    return _str_list(expect_map(result, "list result").get("names"), "list result.names")


def parse_ping_result(result: object) -> float:
    """The provider's clock (unix epoch seconds) from a ``ping`` answer."""
    return expect_time(expect_map(result, "ping result").get("time"), "ping result.time")


def parse_empty_result(result: object, method: str) -> None:
    """``configure``, ``watch`` and ``shutdown`` answer an (ignored) map, normally ``{}``."""
    expect_map(result, f"{method} result")

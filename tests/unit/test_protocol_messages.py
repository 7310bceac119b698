"""Envelopes, method payloads and error codes: strict shapes, precise errors, no surprises."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.errors import (
    ExitCode,
    ProtocolError,
    ProviderError,
    ProviderTimeoutError,
    SecretNotFoundError,
)
from kernel.protocol import (
    ERROR_CODES,
    Changed,
    ErrorCode,
    FrameDecoder,
    GetResult,
    MessageWriter,
    Notification,
    Request,
    Response,
    SecretData,
    SecretRef,
    VersionsResult,
    WireError,
    decode_message,
    encode_message,
    exception_for,
    parse_code,
    parse_deadline,
    parse_list_result,
    parse_ping_result,
    parse_refs,
    refs_params,
    wire_code,
)
from kernel.protocol.codes import MAX_ERROR_MESSAGE, clean_message
from kernel.protocol.methods import MISSING_ANSWER


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


# -- envelopes ---------------------------------------------------------------------------------

VALID = [
    ([0, 7, "get", {"deadline": 1.5}], Request(7, "get", {"deadline": 1.5})),
    ([0, 2**32 - 1, "ping", {}], Request(2**32 - 1, "ping", {})),
    ([1, 0, None, {"x": b"\x00"}], Response(0, None, {"x": b"\x00"})),
    ([1, 3, None, None], Response(3, None, None)),
    (
        [1, 3, {"code": "not_found", "message": "no"}, None],
        Response(3, WireError(ErrorCode.NOT_FOUND, "no"), None),
    ),
    ([2, "changed", {"refs": ["a"]}], Notification("changed", {"refs": ["a"]})),
]


@pytest.mark.parametrize(("wire", "expected"), VALID, ids=lambda v: repr(v)[:40])
def test_valid_messages_decode(wire: list[Any], expected: object) -> None:
    assert decode_message(pack(wire)) == expected


MALFORMED = [
    ({"a": 1}, "must be a non-empty array, got map"),
    ([], "must be a non-empty array"),
    (5, "must be a non-empty array, got int"),
    ([3, 1, "x", {}], "message type must be 0, 1 or 2"),
    ([True, 1, "x", {}], "message type must be 0, 1 or 2, got bool"),
    (["0", 1, "x", {}], "message type must be 0, 1 or 2, got str"),
    ([0, 1, "get"], "request must have 4 elements"),
    ([0, 1, "get", {}, 5], "request must have 4 elements"),
    ([0, -1, "get", {}], "message id must be a uint32"),
    ([0, 2**32, "get", {}], "message id must be a uint32"),
    ([0, True, "get", {}], "message id must be a uint32, got bool"),
    ([0, 1.0, "get", {}], "message id must be a uint32, got float"),
    ([0, 1, b"get", {}], "method name must be a string, got bin"),
    ([0, 1, "", {}], "method name must not be empty"),
    ([0, 1, "x" * 65, {}], "method name is longer than 64"),
    ([0, 1, "get", []], "request params must be a map, got array"),
    ([0, 1, "get", None], "request params must be a map, got nil"),
    ([0, 1, "get", {b"k": 1}], "request params has a non-string key of type bin"),
    ([1, 1, None], "response must have 4 elements"),
    ([1, 1, "boom", None], "response error must be a map, got str"),
    ([1, 1, {"code": "nope", "message": "m"}, None], "unknown error code 'nope'"),
    ([1, 1, {"code": "internal"}, None], "response error.message must be a string, got nil"),
    ([1, 1, {"code": "internal", "message": "m"}, {}], "both an error and a result"),
    ([2, "changed"], "notification must have 3 elements"),
    ([2, 5, {}], "method name must be a string, got int"),
    ([2, "changed", "x"], "notification params must be a map, got str"),
]


@pytest.mark.parametrize(("wire", "message"), MALFORMED, ids=lambda v: repr(v)[:40])
def test_malformed_messages_are_protocol_errors_naming_the_defect(wire: Any, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(pack(wire))
    assert message in str(info.value)


BAD_MSGPACK = [
    (b"\xc1", "not one valid msgpack message"),  # the one never-used byte
    (pack([0, 1, "get", {}]) + b"\x90", "ExtraData"),  # two objects in one frame
    (pack([0, 1, "get", {}])[:-1], "not one valid msgpack message"),  # truncated
    (b"\xd4\x01\x00", "ext"),  # fixext1
    (b"\xd6\xff\x00\x00\x00\x01", "ext"),  # a msgpack timestamp
    (b"\x94\x00\x01\xa3g\xffx\x80", "not valid UTF-8"),  # str with invalid UTF-8
    (b"\x94\x00\x01\xa3get\x81\x01\x02", "not one valid msgpack message"),  # int map key
    (b"\x94\x00\x01\xa3get\x81\x90\x02", "not one valid msgpack message"),  # array map key
    (b"\xdd\xff\xff\xff\xff", "not one valid msgpack message"),  # array claiming 4G items
    (b"\xc6\x7f\xff\xff\xff", "not one valid msgpack message"),  # bin claiming 2 GB
]


@pytest.mark.parametrize(("body", "message"), BAD_MSGPACK, ids=lambda v: repr(v)[:30])
def test_bad_msgpack_is_a_protocol_error(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(body)
    assert message in str(info.value)


@settings(max_examples=500)
@given(st.binary(min_size=1, max_size=200))
def test_arbitrary_bytes_decode_or_raise_protocol_error_only(body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_message(body)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
params = st.dictionaries(st.text(max_size=10), msgpack_values, max_size=5)
ids = st.integers(min_value=0, max_value=2**32 - 1)
methods = st.text(min_size=1, max_size=64)
messages = st.one_of(
    st.builds(Request, ids, methods, params),
    st.builds(Response, ids, st.none(), msgpack_values),
    st.builds(
        Response,
        ids,
        st.builds(WireError, st.sampled_from(list(ErrorCode)), st.text(max_size=30)),
        st.none(),
    ),
    st.builds(Notification, methods, params),
)


@settings(max_examples=300)
@given(st.lists(messages, max_size=8))
def test_messages_round_trip_through_frames(batch: list[Any]) -> None:
    stream = b"".join(encode_message(m) for m in batch)
    decoded = [decode_message(body) for body in FrameDecoder().feed(stream)]
    expected = [
        m
        if not (isinstance(m, Response) and m.error)
        else Response(m.id, WireError(m.error.code, clean_message(m.error.message)), None)
        for m in batch
    ]
    assert decoded == expected


# -- the writer --------------------------------------------------------------------------------


def read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    return out


def test_writer_replaces_an_oversized_response_with_an_error_for_the_same_id() -> None:
    read_fd, write_fd = os.pipe()
    try:
        writer = MessageWriter(write_fd, max_frame_size=100)
        writer.send_many([[1, 5, None, {"v": b"x" * 200}], [1, 6, None, {}]])
        with pytest.raises(ProtocolError):
            writer.send([2, "changed", {"refs": ["x" * 200]}])
        os.close(write_fd)
        write_fd = -1
        got = [decode_message(b) for b in FrameDecoder().feed(read_all(read_fd))]
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    assert isinstance(got[0], Response)
    assert got[0].id == 5
    assert got[0].error is not None
    assert got[0].error.code == ErrorCode.INVALID_REQUEST
    assert "maximum frame size" in got[0].error.message
    assert got[1] == Response(6, None, {})
    assert len(got) == 2


# -- method payloads ---------------------------------------------------------------------------


def test_refs_round_trip_and_duplicate_ids_are_rejected() -> None:
    refs = [SecretRef("1", "db/pw"), SecretRef("2", "db", field="user", version="3")]
    params = decode_message(encode_message(Request(1, "get", refs_params(refs, 9.0)))[4:]).params
    assert parse_refs(params) == tuple(refs)
    assert parse_deadline(params) == 9.0
    with pytest.raises(ProtocolError, match="duplicate ids"):
        parse_refs(refs_params([SecretRef("1", "a"), SecretRef("1", "b")], 1.0))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "params.refs must be an array, got nil"),
        ({"refs": [{"id": "1"}]}, "params.refs[0].path must be a string, got nil"),
        ({"refs": [{"id": "", "path": "a"}]}, "params.refs[0].id must not be empty"),
        ({"refs": [{"id": "1", "path": "a", "field": 3}]}, "params.refs[0].field must be a"),
        ({"refs": ["a"]}, "params.refs[0] must be a map, got str"),
    ],
)
def test_bad_refs_name_the_field(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_refs(params)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "no deadline"),
        ({"deadline": "soon"}, "must be a number, got str"),
        ({"deadline": True}, "must be a number, got bool"),
        ({"deadline": float("inf")}, "must be finite"),
    ],
)
def test_bad_deadlines(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_deadline(params)


def test_get_result_round_trips_and_fills_missing_ids_with_internal() -> None:
    result = GetResult(
        {"1": SecretData(b"s3cret", "v1")}, {"2": WireError(ErrorCode.NOT_FOUND, "gone")}
    )
    wire = msgpack.unpackb(pack(result.to_wire()), raw=False)
    parsed = GetResult.from_wire(wire, ["1", "2", "3"])
    assert parsed.values == {"1": SecretData(b"s3cret", "v1")}
    assert parsed.errors["2"] == WireError(ErrorCode.NOT_FOUND, "gone")
    assert parsed.errors["3"] == WireError(ErrorCode.INTERNAL, MISSING_ANSWER)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"values": {"9": {"value": b"x", "version": "1"}}}, "id '9' that was not requested"),
        ({"values": {"1": {"value": "x", "version": "1"}}}, "value must be bin, got str"),
        ({"values": {"1": {"value": b"x"}}}, "version must be a string, got nil"),
        (
            {"values": {"1": {"value": b"x", "version": "1"}}, "errors": {"1": {}}},
            "error code",
        ),
        ({"values": []}, "get result.values must be a map, got array"),
        ([], "get result must be a map"),
    ],
)
def test_bad_get_results(result: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        GetResult.from_wire(result, ["1"])


def test_both_value_and_error_for_one_id_is_rejected() -> None:
    result = {
        "values": {"1": {"value": b"x", "version": "1"}},
        "errors": {"1": {"code": "internal", "message": "m"}},
    }
    with pytest.raises(ProtocolError, match="both a value and an error"):
        GetResult.from_wire(result, ["1"])


def test_versions_result_and_simple_results() -> None:
    parsed = VersionsResult.from_wire({"versions": {"a": "7"}, "errors": {}}, ["a", "b"])
    assert parsed.versions == {"a": "7"}
    assert parsed.errors["b"].code == ErrorCode.INTERNAL
    assert parse_list_result({"names": ["a/b", "c"]}) == ["a/b", "c"]
    assert parse_ping_result({"time": 12}) == 12.0
    with pytest.raises(ProtocolError):
        parse_list_result({"names": [1]})


def test_changed_notification_needs_refs_or_paths() -> None:
    assert Changed.from_wire({"refs": ["1"]}) == Changed(("1",), ())
    assert Changed.from_wire(Changed(paths=("a",)).to_wire()) == Changed((), ("a",))
    with pytest.raises(ProtocolError, match="names no refs and no paths"):
        Changed.from_wire({})


def test_secret_data_repr_never_shows_the_value() -> None:
    assert "s3cret" not in repr(SecretData(b"s3cret", "v1"))
    assert "s3cret" not in repr(GetResult({"1": SecretData(b"s3cret", "v1")}))


# -- error codes -------------------------------------------------------------------------------

EXPECTED = {
    ErrorCode.NOT_FOUND: (SecretNotFoundError, ExitCode.SECRET),
    ErrorCode.ACCESS_DENIED: (ProviderError, ExitCode.PROVIDER),
    ErrorCode.AUTH_FAILED: (ProviderError, ExitCode.PROVIDER),
    ErrorCode.UNAVAILABLE: (ProviderError, ExitCode.PROVIDER),
    ErrorCode.INVALID_REQUEST: (ProviderError, ExitCode.PROVIDER),
    ErrorCode.TIMEOUT: (ProviderTimeoutError, ExitCode.PROVIDER),
    ErrorCode.INTERNAL: (ProviderError, ExitCode.PROVIDER),
}


def test_the_code_set_is_closed_and_every_code_is_mapped() -> None:
    assert set(EXPECTED) == set(ErrorCode)
    assert {
        "not_found",
        "access_denied",
        "auth_failed",
        "unavailable",
        "invalid_request",
        "timeout",
        "internal",
    } == ERROR_CODES


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_each_code_maps_to_a_kernel_error_and_back(code: ErrorCode) -> None:
    cls, exit_code = EXPECTED[code]
    exc = exception_for(code, "boom", provider="vault", reference="db/pw")
    assert type(exc) is cls
    assert exc.exit_code == exit_code
    # The reference leads; the provider is named once, before the provider's own words.
    assert str(exc).startswith(("db/pw: provider 'vault': boom", "provider 'vault': db/pw: boom"))
    assert str(exc).count("vault") == 1
    assert exc.hint
    assert wire_code(exc) == code
    if isinstance(exc, ProviderError):
        assert exc.code == code.value
        assert exc.provider == "vault"


def test_unknown_codes_and_messages_are_handled() -> None:
    with pytest.raises(ProtocolError, match="unknown error code"):
        parse_code("teapot")
    with pytest.raises(ProtocolError):
        exception_for("teapot", "x")
    assert clean_message("a\nb\x1b[31mc") == "a b [31mc"
    assert len(clean_message("x" * 5000)) == MAX_ERROR_MESSAGE + 1
    assert wire_code(ValueError()) == ErrorCode.INTERNAL

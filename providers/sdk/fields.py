"""JSON secrets: the whole document as text, or one field of it (``#field`` in a reference).

Shared by the providers whose back ends store JSON objects (Vault KV data, AWS and Azure JSON
secret strings). The rules are those of docs/references.md: a string field is delivered as its
UTF-8 text; a number, boolean, null, object or array as its compact JSON text, exactly as typed
(``5432`` stays ``5432``, ``true`` stays ``true``, nested objects stay objects). A field name
that exists as a key is taken literally (Vault keys such as ``tls.crt``); otherwise dots walk
nested objects (``db.password``) and a decimal segment indexes an array (``hosts.0``).

Messages name the secret and the field, never the value or anything the JSON decoder quotes.
"""

from __future__ import annotations

import json
from typing import Any

from providers.sdk.errors import SecretNotFound


def json_text(value: Any) -> bytes:
    """How one JSON value is delivered: strings raw, everything else as compact JSON."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


def parse_json(text: str | bytes, where: str, field: str) -> Any:
    """The parsed JSON document of a secret whose ``field`` was asked for.

    Not JSON raises :class:`SecretNotFound`; the decoder's message is dropped because it can
    quote part of the value.
    """
    try:
        return json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise SecretNotFound(
            f"{where} is not a JSON document, so it has no field {field!r}"
        ) from None


def select_field(document: Any, field: str, where: str) -> bytes:
    """The delivered bytes of ``field`` in a parsed JSON ``document`` (see the module doc)."""
    if isinstance(document, dict) and field in document:
        return json_text(document[field])
    current = document
    walked: list[str] = []
    for segment in field.split("."):
        current = _step(current, segment, where, field, walked)
        walked.append(segment)
    return json_text(current)


def _step(current: Any, segment: str, where: str, field: str, walked: list[str]) -> Any:
    here = f"field {'.'.join(walked)!r} of {where}" if walked else where
    looking = f" (looking up {field!r})" if field != segment else ""
    if isinstance(current, dict):
        if segment in current:
            return current[segment]
        raise SecretNotFound(f"{here} has no field {segment!r}{looking}")
    if isinstance(current, list) and segment.isascii() and segment.isdigit():
        index = int(segment)
        if index < len(current):
            return current[index]
        raise SecretNotFound(
            f"{here} is an array of {len(current)} items, with no index {index}{looking}"
        )
    raise SecretNotFound(f"{here} is a JSON {json_kind(current)}, so it has no field {segment!r}")


def json_kind(value: Any) -> str:
    """The JSON type name of a parsed value, for messages."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"

"""What one reference selects from a local vault entry: a JSON field, and the version pin.

Pure functions over bytes, so they are unit-tested without a vault or a process. Messages name
the secret, the field and the version, never the value or anything parsed out of it.
"""

from __future__ import annotations

from providers.sdk import SecretNotFound
from providers.sdk import fields as sdk_fields


def select_field(value: bytes, path: str, field: str) -> bytes:
    """The bytes of ``field`` in the JSON document stored at ``path``.

    The rules are the SDK's, shared by every provider (:mod:`providers.sdk.fields`, after
    docs/references.md): a JSON string is delivered as its UTF-8 text, any other JSON value as
    its compact JSON text; dots walk nested objects, a decimal segment indexes an array. A
    secret that is not JSON, or has no such field, raises :class:`SecretNotFound`.
    """
    where = repr(path)
    return sdk_fields.select_field(sdk_fields.parse_json(value, where, field), field, where)


def check_version(path: str, current: int, pinned: str | None) -> None:
    """Refuse a version pin other than the current version.

    The local vault keeps only the current value of each name (history is not stored), so a
    pin can be honoured only while it names the current version; any other pin is
    :class:`SecretNotFound`, explaining why.
    """
    if pinned is None:
        return
    if pinned.isascii() and pinned.isdigit() and int(pinned) == current:
        return
    raise SecretNotFound(
        f"{path!r} has no version {pinned!r} in the local vault: it is at version {current},"
        " and the local vault keeps only the current version of each secret"
    )

"""``#field`` selection: one field of a JSON secret (docs/references.md).

Dots walk nested objects. Strings are delivered as they are; numbers, booleans, null, objects
and arrays as their compact JSON text. Errors name the reference and the field, never the value.
"""

from __future__ import annotations

import json
from typing import Any

from kernel.errors import SecretError, SecretNotFoundError
from kernel.secret_value import SecretValue


def select_field(value: SecretValue, field: str, *, subject: str) -> SecretValue:
    """The field ``field`` (``a.b.c``) of the JSON object in ``value``.

    ``subject`` names the secret in messages (a reference, never the value). Raises
    :class:`SecretError` when the value is not a JSON object and :class:`SecretNotFoundError`
    when the field is absent.
    """
    try:
        document: Any = json.loads(value.reveal())
    except (UnicodeDecodeError, ValueError):
        # Not chained: json's exception object keeps the whole document (the secret).
        raise SecretError(
            f"{subject}: cannot select field {field!r}: the secret is not JSON",
            hint="drop the '#field' part to use the whole value",
        ) from None
    walked: list[str] = []
    for name in field.split("."):
        if not isinstance(document, dict):
            where = ".".join(walked) or "the secret"
            raise SecretError(
                f"{subject}: cannot select field {field!r}: {where} is not a JSON object"
            )
        if name not in document:
            walked.append(name)
            names = sorted(map(str, document))
            available = ", ".join(names[:10]) + (", …" if len(names) > 10 else "") or "none"
            raise SecretNotFoundError(
                f"{subject}: no field {'.'.join(walked)!r} in the secret",
                hint=f"fields at that level: {available}",
            )
        document = document[name]
        walked.append(name)
    if isinstance(document, str):
        return SecretValue(document)
    return SecretValue(json.dumps(document, separators=(",", ":"), ensure_ascii=False))

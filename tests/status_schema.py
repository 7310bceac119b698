"""The JSON Schema of ``docker dso status --json``, read from docs/status-json.md (its one
```json block), for the tests that check a status document against it: the unit tests
(:func:`kernel.agent.status_doc.live_status` and ``offline_status``) and the agent's
integration tests (a live answer from the socket)."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from tests.conftest import REPO

DOC = REPO / "docs" / "status-json.md"
_BLOCK = re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL)


@cache
def load_status_schema() -> dict[str, Any]:
    """The schema (draft 2020-12), parsed from the document's only ```json block."""
    blocks = _BLOCK.findall(DOC.read_text())
    assert len(blocks) == 1, f"{DOC} must hold exactly one ```json block, found {len(blocks)}"
    schema: dict[str, Any] = json.loads(blocks[0])
    return schema


def validate_status(doc: object) -> None:
    """Raise :class:`jsonschema.ValidationError` (with the path) if ``doc`` does not match."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_status_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
        raise jsonschema.ValidationError("; ".join(lines[:10]))

"""The metadata docker asks for before every ``docker …``, written without importing json."""

from __future__ import annotations

import json

from kernel.cli.docker_plugin import METADATA, metadata_json


def test_the_metadata_line_is_what_json_would_write() -> None:
    # metadata_json() does not escape: a value needing it (a quote, a backslash, non-ASCII
    # text) must make this fail rather than reach docker as broken JSON.
    assert metadata_json() == json.dumps(METADATA)
    assert json.loads(metadata_json()) == METADATA

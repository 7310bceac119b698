"""``--json`` for the bench scripts: one JSON document on stdout, the usual human output on stderr.

A script calls :func:`json_stdout` around its ``main`` body; with ``enabled`` false nothing
changes. With it, file descriptor 1 points at stderr while the body runs (the human tables, and
whatever a child process prints, go there unchanged), and the document the body filled in is
printed on the real stdout once the body has finished without an exception (bench/issue13.py
reads it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def json_stdout(enabled: bool) -> Iterator[dict[str, Any]]:
    document: dict[str, Any] = {}
    if not enabled:
        yield document
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield document
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    print(json.dumps(document, sort_keys=True), flush=True)

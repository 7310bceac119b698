"""Post a Slack message when a dso rotation ends: an example dso extension.

Install: copy this file into the extensions directory (``~/.dso/extensions``, or
``/var/lib/dso/extensions`` for the agent), make it writable by its owner only, and give dso
``SLACK_WEBHOOK_URL`` (for the agent: ``Environment=`` in its systemd unit). Check with
``docker dso extensions list``. Messages are sent from a background thread, because hooks run
inside the rotation and a slow Slack must not slow it down.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import urllib.request

from kernel import hookimpl
from kernel.extensions import RotationEvent

log = logging.getLogger("dso.extensions.slack_notify")

_ICONS = {"completed": ":white_check_mark:", "rolled back": ":rewind:", "failed": ":x:"}
_outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=100)
_worker: threading.Thread | None = None
_lock = threading.Lock()


def message(outcome: str, event: RotationEvent) -> str:
    """The Slack text for a rotation that ended with ``outcome`` (metadata only, no values)."""
    references = ", ".join(event.references) or "no changed references"
    text = (
        f"{_ICONS[outcome]} dso rotation of *{event.target}* {outcome} "
        f"({event.strategy}, {event.duration:.1f} s): {references}"
    )
    if event.vetoed_by:
        text += f"\n> vetoed by `{event.vetoed_by}`"
    if event.error:
        text += f"\n> {event.error}"
    return text + f"\ntrace id `{event.trace_id}`"


def _send_all(url: str) -> None:
    while (body := _outbox.get()) is not None:
        headers = {"Content-Type": "application/json"}
        # The URL comes from dso's own environment (an operator's setting): S310 accepted.
        request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310
                pass
        except OSError as exc:
            log.warning("slack_notify: message not sent: %s", exc)


def _post(outcome: str, event: RotationEvent) -> None:
    global _worker
    url = os.environ.get("SLACK_WEBHOOK_URL")
    if not url:
        return
    with _lock:
        if _worker is None:
            _worker = threading.Thread(target=_send_all, args=(url,), daemon=True)
            _worker.start()
    try:
        _outbox.put_nowait(json.dumps({"text": message(outcome, event)}).encode())
    except queue.Full:
        log.warning("slack_notify: too many messages waiting; one dropped")


@hookimpl
def dso_rotation_completed(event: RotationEvent) -> None:
    _post("completed", event)


@hookimpl
def dso_rotation_rolled_back(event: RotationEvent) -> None:
    _post("rolled back", event)


@hookimpl
def dso_rotation_failed(event: RotationEvent) -> None:
    _post("failed", event)


@hookimpl
def dso_shutdown() -> None:
    """Send what is queued (a few seconds at most) before dso exits."""
    if _worker is not None:
        _outbox.put(None)
        _worker.join(timeout=5)

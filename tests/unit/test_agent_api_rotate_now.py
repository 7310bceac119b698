"""The socket's ``rotate`` promises "rotate now" (docs/agent-api.md): the action submits its
target to the agent's scheduler with ``now=True``. A target the agent already has in its
debounce window (a change it noticed a moment ago) must not make the request wait for the rest
of that window.
"""

from __future__ import annotations

import threading
import time

from kernel.agent.scheduler import Reason, Scheduler
from kernel.rotation.targets import Target, service_lock_key

WEB = Target("web", service_lock_key("shop", "web"), "shop", "web")


def test_rotate_now_is_not_held_by_a_debounce_window_in_progress() -> None:
    rotated: list[tuple[float, list[str]]] = []
    done = threading.Event()

    def rotate(target: Target, reasons: list[Reason]) -> None:
        rotated.append((time.monotonic(), [r.source for r in reasons]))
        done.set()

    scheduler = Scheduler(rotate, window=30.0, concurrency=1)
    scheduler.start()
    try:
        scheduler.submit(WEB, Reason("watch", frozenset({"dso://app/db"}), "trace-watch"))
        asked = time.monotonic()
        scheduler.submit(WEB, Reason("api", trace_id="trace-api"), now=True)
        done.wait(3)
    finally:
        scheduler.stop(timeout=5)
    assert rotated, "the request waited for the 30 s debounce window of an earlier change"
    at, sources = rotated[0]
    assert at - asked < 1
    assert sources == ["watch", "api"]  # one rotation for both

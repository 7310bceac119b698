"""In-process measurements of the kernel, for whoever listens (the agent's metrics and
``status``); nothing happens when nobody does.

Deep layers (the provider host, the rotation locks, the health gate) cannot know about the
agent, and must not import ``prometheus_client``: they :func:`emit` a named measurement with
plain fields, and the agent :func:`listen`\\ s. A listener runs on the emitting thread, so it
only records (a counter, a ring buffer) and never blocks; an exception in it is logged and
swallowed, never raised into the code path that measured.

Measurements (name: fields):

``provider_call``     provider, method, seconds, ok
``breaker``           provider, state, previous (a circuit breaker changed state)
``lock_contention``   target, waited (seconds), subject, note (an acquisition slower than 1 s)
``health_gate``       target, trace_id, healthy, seconds, attempts, exit_code, output, reason,
                      probe

Never a value: fields are names, numbers and diagnostics already cut for logs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]

_listeners: tuple[Listener, ...] = ()
_lock = threading.Lock()
_log = logging.getLogger("dso.telemetry")


def listen(listener: Listener) -> Callable[[], None]:
    """Call ``listener(name, fields)`` for every measurement; returns the function that stops."""
    global _listeners
    with _lock:
        _listeners = (*_listeners, listener)

    def stop() -> None:
        global _listeners
        with _lock:
            _listeners = tuple(x for x in _listeners if x is not listener)

    return stop


def emit(name: str, **fields: Any) -> None:
    """Hand one measurement to the listeners (cheap when there are none)."""
    listeners = _listeners
    for listener in listeners:
        try:
            listener(name, fields)
        except Exception:
            _log.exception("a telemetry listener failed on %s", name)

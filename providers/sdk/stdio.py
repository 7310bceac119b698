"""Stdout protection: fd 1 is the frame stream, so nothing else may ever write to it.

:func:`protect_stdio` moves the real stdin/stdout to private descriptors (not inherited by
children) for the SDK's frames, points fd 1 at stderr, so a stray ``print`` or a library
writing to stdout lands in the log instead of corrupting a frame, and points fd 0 at
``/dev/null``, so nothing else (``input()``, a child process) can swallow the kernel's frames.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FrameStreams:
    """The private descriptors the SDK reads requests from and writes frames to."""

    read_fd: int
    write_fd: int


def protect_stdio() -> FrameStreams:
    """Take fds 0 and 1 for the protocol; afterwards fd 1 is stderr and fd 0 is /dev/null.

    Call once, before anything else could print. Output a module buffered before this point
    is flushed to stderr, not into the frame stream.
    """
    # os.dup returns non-inheritable descriptors: a subprocess never gets the frame stream.
    write_fd = os.dup(1)
    read_fd = os.dup(0)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
    finally:
        os.close(devnull)
    # Python's own sys.stdout still writes to fd 1, which is now stderr; make it the same
    # object as sys.stderr anyway so ordering with log lines is kept and buffers are shared.
    if sys.stdout is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
    sys.stdout = sys.stderr
    return FrameStreams(read_fd, write_fd)

"""dso-change-freeze: veto secret rotations inside change-freeze windows (a dso extension).

Installed as a package, dso finds it through the entry point ``change_freeze_windows`` of the
group ``dso`` (see pyproject.toml). Before every swap it reads the freeze file (TOML, format in
:mod:`dso_change_freeze.windows`) and, inside a window that applies to the container, returns a
reason: dso then removes the new container, the old one keeps serving untouched, and the
rotation is recorded as vetoed. Outside every window the rotation runs.

The file is ``$DSO_CHANGE_FREEZE_CONFIG``, else the first that exists of
``/etc/dso/change-freeze.toml`` (the agent) and ``$DSO_HOME/change-freeze.toml`` (default
``~/.dso/change-freeze.toml``). No file: no freeze. A broken file stops dso from loading the
extension (so rotating commands refuse to run, naming it); broken while dso runs, it vetoes
every swap (a freeze fails closed) with the error.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

from dso_change_freeze.windows import FreezeConfig, FreezeConfigError, Window, load
from kernel import hookimpl
from kernel.extensions import RotationEvent

__all__ = ["config_path", "dso_before_swap", "veto_reason"]

CONFIG_ENV = "DSO_CHANGE_FREEZE_CONFIG"
AGENT_FILE = Path("/etc/dso/change-freeze.toml")

_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int], FreezeConfig]] = {}


def config_path() -> Path | None:
    """The freeze file in force, or None when there is none."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    home = Path(os.environ.get("DSO_HOME") or "~/.dso").expanduser()
    for candidate in (AGENT_FILE, home / "change-freeze.toml"):
        if candidate.exists():
            return candidate
    return None


def _config(path: Path) -> FreezeConfig | None:
    """The parsed file, re-read only when it changed (hooks run on every swap, maybe in
    parallel). None when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FreezeConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    key = (st.st_mtime_ns, st.st_size)
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
    config = load(path)
    with _lock:
        _cache[path] = (key, config)
    return config


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def veto_reason(event: RotationEvent, when: dt.datetime | None = None) -> str | None:
    """Why ``event``'s swap must wait, or None when no window freezes it."""
    path = config_path()
    if path is None:
        return None
    try:
        config = _config(path)
    except FreezeConfigError as exc:
        return f"the change-freeze file is broken, so every swap waits (fix it): {exc}"
    if config is None:
        return None
    window = config.active(
        when or now(),
        target=event.target,
        project=event.project,
        service=event.service,
        trigger=event.trigger,
    )
    return None if window is None else _reason(window, path)


def _reason(window: Window, path: Path) -> str:
    why = f": {window.reason}" if window.reason else ""
    return f"change freeze {window.name!r} ({window.describe()}){why}; windows in {path}"


@hookimpl
def dso_before_swap(event: RotationEvent) -> str | None:
    return veto_reason(event)


# Checked when dso loads the extension: a broken file makes `docker dso extensions list` show
# it as failed, and rotating commands stop naming it, instead of rotating unguarded.
_initial = config_path()
if _initial is not None:
    _config(_initial)

"""Where dso keeps its files, in local mode (``~/.dso``) and agent mode (``/etc``, ``/var``).

``DSO_HOME`` overrides the local-mode root (tests and side-by-side installs use it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Layout:
    """The directory layout of one dso installation (spec: "Directory Structure")."""

    #: ``local`` (a user's ``~/.dso``) or ``agent`` (the systemd service).
    mode: str
    root: Path
    config: Path
    vault: Path
    vault_key: Path
    state: Path
    cache: Path
    logs: Path
    plugins: Path
    locks: Path
    snapshots: Path
    run: Path

    @property
    def socket(self) -> Path:
        """The agent's API socket (``agent.socket`` overrides): ``/run/dso/agent.sock`` for
        the host agent; in the dso home for a local one, so each home has its own agent."""
        if self.mode == "agent":
            return self.run / "agent.sock"
        return self.root / "agent.sock"

    def directories(self) -> tuple[Path, ...]:
        """Directories ``init`` creates (mode 0700)."""
        return (self.root, self.state, self.cache, self.logs, self.plugins, self.locks)


def local_home() -> Path:
    env = os.environ.get("DSO_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".dso"


def local_layout(root: Path | None = None) -> Layout:
    root = root if root is not None else local_home()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    run = Path(runtime) / "dso" if runtime else root / "run"
    return Layout(
        mode="local",
        root=root,
        config=root / "config.yaml",
        vault=root / "vault.enc",
        vault_key=root / "vault.key",
        state=root / "state",
        cache=root / "cache",
        logs=root / "logs",
        plugins=root / "plugins",
        locks=root / "locks",
        snapshots=root / "snapshots",
        run=run,
    )


def agent_layout() -> Layout:
    lib = Path("/var/lib/dso")
    return Layout(
        mode="agent",
        root=lib,
        config=Path("/etc/dso/dso.yaml"),
        vault=lib / "vault.enc",
        vault_key=Path("/etc/dso/vault.key"),
        state=lib / "state",
        cache=lib / "cache",
        logs=Path("/var/log/dso"),
        plugins=lib / "plugins",
        locks=lib / "locks",
        snapshots=lib / "snapshots",
        run=Path("/run/dso"),
    )

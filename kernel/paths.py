"""Where dso keeps its files, in local mode (``~/.dso``) and agent mode (``/etc``, ``/var``).

``DSO_HOME`` overrides the local-mode root (tests and side-by-side installs use it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


#: Picks the installation (``local`` or ``agent``) for commands without ``--mode``.
MODE_ENV = "DSO_MODE"
MODES = ("local", "agent")


def installation_mode(
    config_path: Path | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """Which installation a command works on when ``--mode`` is not given.

    ``$DSO_MODE`` when set; else ``local`` when ``$DSO_HOME`` is set; else ``agent`` when the
    configuration in use is the host agent's (``-c /etc/dso/dso.yaml``, or none given and that
    file exists: the spec's lookup order puts it first); else ``local``. So on a bootstrapped
    host ``sudo docker dso up -d`` labels its containers for the host agent, and ``docker dso
    status`` asks the host agent, while a user with their own ``$DSO_HOME`` keeps their own.
    """
    env = os.environ if environ is None else environ
    chosen = env.get(MODE_ENV, "")
    if chosen in MODES:
        return chosen
    if env.get("DSO_HOME"):
        return "local"
    system_config = agent_layout().config
    if config_path is not None:
        same = Path(config_path).expanduser().absolute() == system_config
        return "agent" if same else "local"
    return "agent" if system_config.exists() else "local"


def layout_of(mode: str) -> Layout:
    """The layout of ``mode``'s installation."""
    return agent_layout() if mode == "agent" else local_layout()

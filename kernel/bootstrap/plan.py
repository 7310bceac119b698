"""What a bootstrap wants: every path with its owner and mode, the configuration, the vault, the
group and the unit, for the host agent or a user's ``~/.dso``.

:mod:`kernel.bootstrap.planner` compares each with what is there; the plan is a list of
:mod:`~kernel.bootstrap.steps` (empty when everything is in place: a second run has nothing to
do), what is kept as it is, and notes for the operator. Nothing is changed here;
:mod:`kernel.bootstrap.transaction` applies a plan.

Agent mode (spec: "Agent Lifecycle"; owners and modes in docs/bootstrap.md)::

    /etc/dso                 0750 root:dso    dso.yaml 0640 root:dso, vault.key 0600 root:root
    /var/lib/dso             0750 root:root   state cache locks plugins snapshots 0700,
                                              vault.enc 0600 (all root:root)
    /var/log/dso             0750 root:root
    /run/dso                 0755 root:root   (agent.sock 0660 root:dso, secrets/ 0700)
    /etc/systemd/system/dso-agent.service 0644 root:root

``/var/lib/dso``, ``/var/log/dso`` and ``/run/dso`` are the unit's StateDirectory,
LogsDirectory and RuntimeDirectory: systemd gives them to the unit's ``User:Group`` with the
unit's modes at every start, so the plan reads those from the unit (:func:`unit_directories`)
and asks for exactly them (anything else would be undone by the first start, and "fixed" again
by the next bootstrap).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kernel.bootstrap.config_text import ProviderChoice
from kernel.bootstrap.host import GROUP, Host
from kernel.bootstrap.planner import Plan, Planner
from kernel.bootstrap.steps import AddGroup, DaemonReload, Owner
from kernel.errors import StorageError
from kernel.paths import Layout, agent_layout

__all__ = [
    "AgentRequest",
    "LocalRequest",
    "plan_agent",
    "plan_local",
    "rooted",
    "unit_directories",
]

#: The command that follows a bootstrap of the host agent.
NEXT_AGENT = "sudo docker dso system enable"
ROOT = Owner("root")
DSO = Owner(GROUP)


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """What ``bootstrap agent`` was asked for."""

    providers: tuple[ProviderChoice, ...] = (ProviderChoice("local"),)
    default_provider: str | None = None
    #: The program the unit runs.
    executable: str = "/usr/local/bin/dso"
    #: Regenerate an existing dso.yaml (a backup is kept).
    force_config: bool = False
    #: Providers were chosen explicitly (by flag or prompt), not defaulted.
    providers_given: bool = False


@dataclass(frozen=True, slots=True)
class LocalRequest:
    """What ``bootstrap local`` was asked for."""

    providers: tuple[ProviderChoice, ...] = (ProviderChoice("local"),)
    default_provider: str | None = None
    force_config: bool = False
    providers_given: bool = False


def rooted(path: Path, root: Path) -> Path:
    """``path`` under ``root`` (itself when ``root`` is ``/``)."""
    if root == Path("/"):
        return path
    return root / path.relative_to("/")


def _rooted_layout(layout: Layout, root: Path) -> Layout:
    changes: dict[str, Any] = {
        f.name: rooted(getattr(layout, f.name), root)
        for f in dataclasses.fields(layout)
        if isinstance(getattr(layout, f.name), Path)
    }
    return dataclasses.replace(layout, **changes)


def plan_agent(
    request: AgentRequest,
    host: Host,
    *,
    root: Path = Path("/"),
    now: datetime | None = None,
) -> Plan:
    """The plan that sets up the host agent (under ``root``)."""
    from kernel.system.unit import UNIT_PATH, render_unit

    layout = _rooted_layout(agent_layout(), root)
    unit_text = render_unit(request.executable)
    managed = unit_directories(unit_text)
    plan = Plan("agent", layout, root, unit=rooted(UNIT_PATH, root), next=NEXT_AGENT)
    planner = Planner(host, plan)
    if host.manages_system:
        plan.group = GROUP
        if host.group_id(GROUP) is None:
            plan.steps.append(AddGroup(GROUP))
            planner.new_groups.add(GROUP)
        else:
            plan.kept.append(f"group {GROUP} exists")
    planner.directory(layout.config.parent, 0o750, DSO, "configuration directory")
    planner.directory(layout.root, *managed["State"], "state directory (the unit's StateDirectory)")
    for path in (layout.state, layout.cache, layout.locks, layout.plugins, layout.snapshots):
        planner.directory(path, 0o700, ROOT, f"{path.name} directory")
    planner.directory(layout.logs, *managed["Logs"], "log directory (the unit's LogsDirectory)")
    planner.directory(
        layout.run, *managed["Runtime"], "socket directory (the unit's RuntimeDirectory)"
    )
    planner.config(
        layout.config,
        request.providers,
        request.default_provider,
        mode="agent",
        file_mode=0o640,
        owner=DSO,
        force=request.force_config,
        providers_given=request.providers_given,
        now=now,
    )
    # The local provider always exists (docs/providers.md), so its vault does too.
    planner.vault(layout, ROOT, passphrase=False)
    assert plan.unit is not None
    planner.file(plan.unit, unit_text.encode(), 0o644, ROOT, "systemd unit")
    if not host.manages_system:
        plan.notes.append(
            f"a tree under {root}: no group is added and systemd is not reloaded; whoever "
            f"installs it adds group {GROUP} (groupadd --system {GROUP}), gives the root:{GROUP} "
            "paths above to it if they are not already, and runs systemctl daemon-reload"
        )
    elif host.systemd_running():
        if any(step.path == plan.unit for step in plan.steps):
            plan.steps.append(DaemonReload())
    else:
        plan.notes.append(
            "systemd is not running here: the unit is written for when it does; meanwhile "
            "run `dso --config /etc/dso/dso.yaml agent --mode agent` under what supervises "
            "services here (a container's restart policy, supervisord, s6, runit) so it "
            "restarts when it stops"
        )
        plan.next = "dso --config /etc/dso/dso.yaml agent --mode agent (under a supervisor)"
    return plan


def unit_directories(unit_text: str) -> dict[str, tuple[int, Owner]]:
    """``Runtime``, ``State``, ``Logs`` → the mode and owner systemd gives those directories of
    the unit at every start (its ``User:Group`` and ``<kind>DirectoryMode=``, default 0755)."""
    settings: dict[str, str] = {}
    for line in unit_text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", ";")):
            settings[key.strip()] = value.strip()
    if settings.get("User", "root") != "root":
        raise StorageError(f"the unit runs as User={settings['User']}; a bootstrap expects root")
    owner = Owner(settings.get("Group") or "root")
    return {
        kind: (int(settings.get(f"{kind}DirectoryMode", "0755"), 8), owner)
        for kind in ("Runtime", "State", "Logs")
    }


def plan_local(
    request: LocalRequest,
    layout: Layout,
    *,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Plan:
    """The plan that sets up a user's ``~/.dso`` (``layout``), as ``docker dso init`` would,
    with an existing installation kept and checked instead of refused."""
    from kernel.vault import PASSPHRASE_ENV

    env = os.environ if environ is None else environ
    plan = Plan("local", layout, next="docker dso secret set NAME")
    planner = Planner(Host(), plan)
    for path in layout.directories():
        what = "dso home" if path == layout.root else f"{path.name} directory"
        planner.directory(path, 0o700, None, what)
    planner.config(
        layout.config,
        request.providers,
        request.default_provider,
        mode="local",
        file_mode=0o600,
        owner=None,
        force=request.force_config,
        providers_given=request.providers_given,
        now=now,
    )
    passphrase = PASSPHRASE_ENV in env
    if passphrase and not layout.vault.exists():
        from kernel.vault import KeySource

        # An empty passphrase is refused before anything is created (as `docker dso init`).
        KeySource.from_env(layout.vault_key, env).require_passphrase(layout.vault)
    planner.vault(layout, None, passphrase=passphrase)
    return plan

"""``docker dso status`` and ``docker dso events``: what the agent knows and what it does.

``status`` asks the agent of this installation on its socket (the same ``--mode`` as ``dso
agent`` picks the installation) and prints its document (docs/status-json.md); when nothing
answers it prints the same document from the state files, says on stderr that the agent is not
running, and exits 10. ``--watch`` then follows the event stream. ``events`` is the stream
alone. The live path imports only the socket client and reads ``agent.socket`` from the record
of :mod:`kernel.config.agent_socket` while the configuration file is unchanged; plain ``status
--json`` is answered without click when it can be (:mod:`kernel.cli.quick`), and else here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.modes import layout_for, mode_option
from kernel.errors import AgentUnavailableError, DSOError

if TYPE_CHECKING:
    from pathlib import Path

    from kernel.agent.api.client import AgentClient
    from kernel.paths import Layout


#: Seconds each Docker call of the offline document may take (it asks about the swarm).
OFFLINE_DOCKER_TIMEOUT = 5.0

_mode_option = mode_option(
    "Which installation's agent: local (~/.dso, $DSO_HOME) or agent (the host's, "
    "/run/dso/agent.sock), as for `dso agent --mode`."
)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the document as JSON (stdout only).")
@click.option(
    "--watch",
    is_flag=True,
    help="After the status, print each event of the agent as it happens, until Ctrl-C.",
)
@_mode_option
@pass_app
def status(app: Application, as_json: bool, watch: bool, mode: str | None) -> None:
    """Show what the agent knows, live or from its state files.

    Runtime, providers, cache, managed containers, rotations (in progress, awaiting operator
    review, recent), the swarm (this node's role; on a manager dso's Swarm services, the
    versions each mounts, its update state and last rotation) and observability (traces,
    provider latency, lock contention, health checks, circuit breakers). Asks the running agent
    on its socket. When none answers, shows the same document from the state files
    (runtime.json, containers.json, the rotation journal) and the swarm from Docker, says on
    stderr that the agent is not running and exits 10; providers, cache, queue, provider
    latency and circuit breakers are then unknown. The JSON document and every field:
    docs/status-json.md.

    \b
    Examples:
      docker dso status
      docker dso status | grep -i cache
      docker dso status --json | jq '.observability'
      docker dso status --json | jq '.rotations.awaiting_review'
      docker dso status --json | jq '.swarm.services[] | {name, secrets}'
      docker dso status --watch
      sudo docker dso status --mode agent
    """
    layout = layout_for(app, mode)
    client = _client(app, layout)
    try:
        doc = client.call("status")
    except AgentUnavailableError as exc:
        _offline(app, layout, client.path, exc, as_json=as_json)
    if watch and as_json:
        app.out(json.dumps(doc, separators=(",", ":")))
    else:
        _print(app, doc, as_json=as_json)
    if watch:
        _follow(app, client.stream("events"), as_json=as_json)


@click.command("events")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="Only events of this type (repeat, or separate with commas): rotation, "
    "rotation_queued, rotation_started, check, docker, breaker, health_gate, lock_contention, "
    "recovery, request, denied, …",
)
@click.option(
    "--since-history",
    "history",
    is_flag=True,
    help="Start with the last 100 events the agent kept, then follow.",
)
@_mode_option
@pass_app
def events(
    app: Application, as_json: bool, types: tuple[str, ...], history: bool, mode: str | None
) -> None:
    """Follow the agent's events as they happen, one line each, until Ctrl-C.

    Every event has a type and a time; the other fields depend on the type (docs/agent-api.md
    lists them): names, versions, counts and diagnostics, never a value. Exits 10 when no agent
    answers.

    \b
    Examples:
      docker dso events
      docker dso events --type rotation --type health_gate
      docker dso events --json --since-history | jq -c 'select(.type == "rotation")'
    """
    layout = layout_for(app, mode)
    client = _client(app, layout)
    wanted = sorted({t.strip() for given in types for t in given.split(",") if t.strip()})
    params: dict[str, Any] = {"history": history}
    if wanted:
        params["types"] = wanted
    _follow(app, client.stream("events", **params), as_json=as_json)


# -- helpers ------------------------------------------------------------------------------------


def _client(app: Application, layout: Layout) -> AgentClient:
    """The client of ``layout``'s agent (``agent.socket`` when the configuration sets it)."""
    from kernel.agent.api.client import AgentClient
    from kernel.config.agent_socket import configured_socket

    configured = None
    try:
        configured = configured_socket(app.config_path, layout.cache)
    except DSOError as exc:
        app.warn(f"configuration not loaded ({exc.message}); trying the default socket")
    return AgentClient(configured or layout.socket)


def _print(app: Application, doc: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        app.out_json(doc)
        return
    from kernel.cli.status_output import render

    for line in render(doc):
        app.out(line)


def _offline(
    app: Application, layout: Layout, path: Path, exc: AgentUnavailableError, *, as_json: bool
) -> NoReturn:
    """Print the document from the state files, then fail with exit 10 saying why."""
    from functools import partial

    from kernel.agent.instance import InstanceLock
    from kernel.agent.status_doc import offline_status
    from kernel.containers.client import connect

    holder = InstanceLock(layout.state).holder()
    if holder is not None:
        reason = f"the agent (pid {holder}) runs but does not answer on {path}"
        why = f"{reason} ({exc.message})"
    elif not path.exists():
        reason = "no agent is running for this installation"
        why = f"the agent is not running (no socket at {path})"
    else:
        reason = "no agent is running for this installation"
        why = f"the agent is not running ({exc.message})"
    doc = offline_status(
        layout,
        app.config_path,
        socket=path,
        reason=reason,
        connect_docker=partial(connect, timeout=OFFLINE_DOCKER_TIMEOUT),
    )
    _print(app, doc, as_json=as_json)
    raise AgentUnavailableError(f"{why}; status from the state files", hint=exc.hint)


def _follow(app: Application, stream: Iterable[dict[str, Any]], *, as_json: bool) -> None:
    """Print each event until Ctrl-C (exit 0) or the agent goes away (exit 10)."""
    from kernel.cli.status_output import event_line

    try:
        for event in stream:
            app.out(json.dumps(event, separators=(",", ":")) if as_json else event_line(event))
    except KeyboardInterrupt:
        return
    raise AgentUnavailableError("the agent stopped: its event stream ended")

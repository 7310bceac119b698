"""Swarm checks: this daemon's place in a swarm (``swarm.node``) and dso's versioned Swarm
secrets (``swarm.secrets``). A daemon outside any swarm passes both: Swarm is optional.

Only managers create secrets and update services, so ``docker dso stack deploy`` and swarm
rotations run there; a worker is worth a warning only when dso's secrets are expected (never
for a plain host). A version no service spec, update in progress or live task uses is a
leftover: the next deploy, rotation or ``stack rm`` removes it (docs/swarm.md).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from kernel.containers.swarm import SwarmNode, swarm_node
from kernel.doctor.model import Check, Finding, NotChecked, fail, ok, warn
from kernel.errors import DSOError
from kernel.swarm.secret_versions import dso_secrets, secret_uses

if TYPE_CHECKING:
    from kernel.doctor.context import Context


def _node(ctx: Context) -> SwarmNode:
    client = ctx.docker()
    return ctx.memo("swarm.node", lambda: swarm_node(client))


def swarm_node_check(ctx: Context) -> Finding:
    try:
        node = _node(ctx)
    except DSOError as exc:
        return fail(exc.message, fix=exc.hint or "see docker.reachable")
    if node.state == "inactive":
        return ok(
            "this Docker daemon is not part of a swarm (Swarm is optional)",
            detail="`docker dso stack deploy` and swarm rotations need a swarm manager",
        )
    if node.state in ("error", "locked"):
        return fail(
            f"this Docker daemon's swarm state is {node.state}",
            detail="a locked manager waits for its unlock key; an error state for the "
            "swarm to be repaired",
            fix="`docker swarm unlock` (locked), else see `docker info` and `docker node ls`",
        )
    if not node.active:
        return warn(f"this Docker daemon is joining a swarm (state: {node.state})")
    if node.manager:
        return ok(
            f"swarm manager (node {node.node_id[:12]})",
            detail="dso creates versioned secrets and updates services here",
        )
    return ok(
        f"swarm worker (node {node.node_id[:12]})",
        detail="run `docker dso stack …` and the agent's swarm rotations on a manager",
    )


def swarm_secrets(ctx: Context) -> Finding:
    try:
        node = _node(ctx)
    except DSOError:
        raise NotChecked("the swarm state is unknown", see="swarm.node") from None
    if not node.active:
        return ok("not in a swarm: no swarm secrets to check")
    if not node.manager:
        return ok("a swarm worker: managers hold the secrets (run doctor on one to check them)")
    client = ctx.docker()
    try:
        versions = dso_secrets(client)
        used = Counter(use.secret for use in secret_uses(client))
    except DSOError as exc:
        return fail(exc.message, fix=exc.hint or "see `docker info`")
    if not versions:
        return ok("no dso swarm secrets")
    stacks = sorted({v.stack for v in versions})
    unused = [v.name for v in versions if not used[v.name]]
    summary = (
        f"{len(versions)} dso secret version{'s' if len(versions) != 1 else ''} "
        f"for {len(stacks)} stack{'s' if len(stacks) != 1 else ''} ({', '.join(stacks)})"
    )
    if unused:
        return warn(
            f"{summary}; {len(unused)} used by no service or task: {', '.join(unused)}",
            detail="a version is kept while a service spec, an update in progress (it may roll "
            "back) or a live task uses it; these are no longer used",
            fix="the next `docker dso stack deploy`, rotation or `docker dso stack rm` removes "
            "them; `docker dso stack secrets` shows what uses each version",
        )
    return ok(summary, detail="`docker dso stack secrets` shows what uses each version")


CHECKS = (
    Check(
        "swarm.node", "this daemon's place in a swarm (manager, worker or none)", swarm_node_check
    ),
    Check("swarm.secrets", "every dso swarm secret version is in use", swarm_secrets),
)

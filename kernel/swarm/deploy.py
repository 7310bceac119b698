"""``docker dso stack deploy`` and ``stack rm``: the steps, each usable and timed on its own.

    manager_node   → this daemon must be an active swarm manager (only managers hold secrets)
    read_stack     → (kernel.swarm.stack) the file, its references, its problems
    create_versions→ one versioned Swarm secret per reference, values through the API
    rewrite + dump → (kernel.swarm.stack) the file ``docker stack deploy`` reads on stdin
    run_stack      → ``docker stack deploy -c - STACK`` / ``docker stack rm STACK``
    wait_unused / remove_unused → retire the stack's versions no task uses any more

Nothing here prints; the CLI shows progress between the steps.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from kernel.containers.swarm import swarm_node
from kernel.errors import DockerError, DockerUnavailableError
from kernel.swarm.secret_versions import (
    SwarmSecret,
    dso_secrets,
    ensure_secret,
    remove_unused,
    secrets_in_use,
)

if TYPE_CHECKING:
    import docker

    from kernel.injection.resolver import Resolved
    from kernel.reference import SecretReference
    from kernel.swarm.stack import StackFile

__all__ = ["create_versions", "manager_node", "retire", "run_stack", "wait_unused"]


def manager_node(client: docker.DockerClient) -> None:
    """Raise :class:`DockerError` unless this daemon is an active swarm manager."""
    node = swarm_node(client)
    if not node.active:
        raise DockerError(
            f"this Docker daemon is not part of a swarm (state: {node.state})",
            hint="run it on a swarm manager, or create a swarm with `docker swarm init`",
        )
    if not node.manager:
        raise DockerError(
            "this Docker daemon is a swarm worker: only managers create secrets and services",
            hint="run the command on a manager node (`docker node ls` lists them)",
        )


def create_versions(
    client: docker.DockerClient,
    found: StackFile,
    values: Mapping[SecretReference, Resolved],
) -> dict[SecretReference, SwarmSecret]:
    """The secret holding each reference's value, created where missing."""
    created: dict[SecretReference, SwarmSecret] = {}
    for ref, key in found.keys.items():
        name = key.removeprefix("dso_")
        created[ref] = ensure_secret(client, found.stack, ref, values[ref], name)
    return created


def run_stack(argv: Sequence[str], stdin: str | None = None, *, capture: bool = False) -> int:
    """Run ``docker stack …`` (``stdin``: the rewritten file, never a value); its exit code.

    With ``capture`` its output is kept from the terminal (``--json`` prints only JSON) and
    its error text becomes the :class:`DockerError` of a failure.
    """
    try:
        done = subprocess.run(
            ["docker", "stack", *argv],
            input=stdin.encode() if stdin is not None else None,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=capture,
            check=False,
        )
    except FileNotFoundError:
        raise DockerUnavailableError(
            "the docker command is not installed", hint="install the Docker CLI"
        ) from None
    if capture and done.returncode != 0:
        text = (done.stderr or done.stdout or b"").decode("utf-8", "replace").strip()
        raise DockerError(f"docker stack {argv[0]} failed: {text or f'exit {done.returncode}'}")
    return done.returncode


def wait_unused(
    client: docker.DockerClient, names: Sequence[str], timeout: float, interval: float = 0.5
) -> set[str]:
    """Wait until no service or live task uses ``names`` (or ``timeout``); those still used."""
    deadline = time.monotonic() + timeout
    while True:
        used = set(names) & secrets_in_use(client)
        if not used or time.monotonic() >= deadline:
            return used
        time.sleep(interval)


def retire(
    client: docker.DockerClient, stack: str, keep: Sequence[str] = (), *, keep_newest: bool = True
) -> tuple[list[str], list[str]]:
    """Remove ``stack``'s dso secrets that nothing uses, except ``keep``; (removed, kept).

    With ``keep_newest`` the newest version of each reference stays too: a rotation running
    at the same time may have just created it, before the service update that mounts it.
    """
    versions = dso_secrets(client, stack)  # oldest first
    spared = set(keep)
    if keep_newest:
        spared |= {s.name for s in {s.reference: s for s in versions}.values()}
    candidates = [s.name for s in versions if s.name not in spared]
    removed = remove_unused(client, candidates)
    return removed, [n for n in candidates if n not in removed]

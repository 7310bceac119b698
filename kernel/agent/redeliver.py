"""After a host reboot: secret files back on the tmpfs, and the containers Docker could not start.

A reboot empties the tmpfs that holds the ``dsofile://`` files. Docker then restarts the managed
containers whose restart policy says so, and fails for those whose secrets directory is a bind
mount that no longer exists (``bind source path does not exist``), or starts them with nothing
to read. At start the agent re-delivers, for every managed compose container whose directory has
no ``..data``, the files at exactly the versions its ``dso.versions`` label records (a rotation
follows at the first check if the provider now has newer ones), then starts the containers that
should be running: not running, restart policy ``always`` or ``unless-stopped``, and stopped by
an error rather than by an operator (Docker records the error).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.compose.inject import file_owner
from kernel.compose.scan import parse_user
from kernel.containers.swap import ensure_running, find
from kernel.errors import DSOError, ProviderError, SecretNotFoundError, StorageError
from kernel.injection.atomic_dir import DATA
from kernel.injection.filenames import file_name
from kernel.injection.resolver import Resolved
from kernel.injection.tmpfs import SecretsDir
from kernel.labels import COMPOSE_PROJECT_LABEL
from kernel.log import get_logger
from kernel.reference import Delivery, parse_reference
from kernel.rotation.files import SecretFiles
from kernel.rotation.targets import lock_key_of, log_context

if TYPE_CHECKING:
    import docker

    from kernel.agent.managed import Managed
    from kernel.containers.view import ContainerView
    from kernel.runtime import Runtime

log = get_logger("agent.redeliver")
#: Restart policies under which Docker would have started the container at boot.
_RESTARTING = frozenset({"always", "unless-stopped"})


def redeliver(
    runtime: Runtime, client: docker.DockerClient, managed: Iterable[Managed]
) -> list[str]:
    """Re-deliver missing secret files and start what should run; names of the containers
    whose files were written again."""
    done = []
    secrets_dir = SecretsDir(runtime.secrets_base)
    for container in managed:
        wanted = {
            variable: text for variable, text in container.references.items() if _is_file(text)
        }
        ours = [
            Path(source)
            for source in container.bind_sources
            if Path(source).is_relative_to(secrets_dir.base)
        ]
        if not wanted or (ours and all(_present(source) for source in ours)):
            continue  # the common case, decided from the listing: no inspect per container
        view = find(client, container.id)
        if view is None:
            continue
        files = SecretFiles.of(view)
        if files is None or _present(files.directory):
            continue
        try:
            _deliver(runtime, secrets_dir, view, files.directory, wanted, container)
        except DSOError as exc:
            log.error(
                "%s: cannot write its secret files again: %s",
                view.name,
                exc.message,
                extra={"target": view.name, **log_context(view.name, lock_key_of(view))},
            )
            continue
        done.append(view.name)
        log.warning(
            "recovery: %s had lost its secret files (host restarted?): written again at the "
            "versions it was given",
            view.name,
            extra=log_context(view.name, lock_key_of(view)),
        )
        if _should_run(view):
            ensure_running(client, view)
            log.info("recovery: started %s, which could not start without them", view.name)
    return done


def _deliver(
    runtime: Runtime,
    secrets_dir: SecretsDir,
    view: ContainerView,
    directory: Path,
    wanted: dict[str, str],
    container: Managed,
) -> None:
    project = view.labels.get(COMPOSE_PROJECT_LABEL)
    if project is None or directory.parent != secrets_dir.base / project:
        raise StorageError(
            f"its secrets directory {directory} is not under {secrets_dir.base}",
            hint="the agent must run with the DSO_SECRETS_DIR/mode `docker dso up` used",
        )
    refs = {}
    for variable, text in wanted.items():
        ref = parse_reference(text)
        held = container.versions.get(variable, "")
        version = held.partition(":")[2] or None
        refs[variable] = dataclasses.replace(ref, version=version) if version else ref
    outcomes = runtime.rollout_resolver.resolve(list(dict.fromkeys(refs.values())))
    values = {}
    for variable, ref in refs.items():
        outcome = outcomes[ref]
        if isinstance(outcome, DSOError) and ref.version is not None:
            # That version cannot be had: the provider no longer keeps it (the local vault keeps
            # only the current one) or is unreachable. Write the current version (the cache's
            # last known good one while the provider is down); a check then rotates the
            # container so its labels say what it holds.
            gone = isinstance(outcome, SecretNotFoundError) or (
                isinstance(outcome, ProviderError) and outcome.code == "not_found"
            )
            current = dataclasses.replace(ref, version=None)
            outcome = runtime.rollout_resolver.resolve([current])[current]
            log.info(
                "%s: %s at version %s %s: wrote the current version",
                view.name,
                wanted[variable],
                ref.version,
                "is no longer kept" if gone else "cannot be fetched now",
            )
        if not isinstance(outcome, Resolved):
            raise outcome
        values[file_name(variable)] = outcome.value
    owner = file_owner(parse_user(str(view.config.get("User") or "0")))
    secrets_dir.prepare()
    with secrets_dir.locked(project):
        secrets_dir.write_service(project, directory.name, values, owner)


def _is_file(text: str) -> bool:
    try:
        return parse_reference(text).delivery is Delivery.FILE
    except DSOError:
        return False


def _present(directory: Path) -> bool:
    return os.path.isdir(directory / DATA)


def _should_run(view: ContainerView) -> bool:
    state = view.raw.get("State") or {}
    policy = str((view.host_config.get("RestartPolicy") or {}).get("Name") or "no")
    return not state.get("Running") and policy in _RESTARTING and bool(state.get("Error"))

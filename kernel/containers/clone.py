"""A faithful copy of a container: the create request built from its full ``docker inspect``.

The request body is the old container's ``Config`` and ``HostConfig`` as the daemon reported
them, posted back through the low-level ``POST /containers/create``, so every field survives,
including those this module does not know about (restart policy, limits, capabilities, devices,
ulimits, log config, tmpfs, security options, extra hosts, DNS, sysctls, init, ipc/pid modes…).
Only what must change is changed:

- ``Env``: the replaced variables get their new values (revealed here, at the last moment);
- ``Labels``: updated ``dso.*`` labels (and compose's config hash) and the rotation id;
- bind mounts named in ``bind_sources``: a new host source (a rotation's own secrets directory,
  so the old container keeps reading its files until the swap);
- ``Hostname``: dropped when it is the old container's short id (Docker's default), so the copy
  gets its own, as ``docker run`` would;
- ``Image``: the same image *content*: the reference as written if it still names the old image
  id, else the id itself (a re-tagged image is not an upgrade we were asked for);
- anonymous volumes (``Config.Volumes``, image ``VOLUME``, ``-v /path``, a volume mount with no
  source) are mounted by name, so the copy sees the same data instead of a fresh empty volume;
- networks: API 1.41 accepts one network at create time, so the others are connected after
  create and before start, each with its aliases (minus the old short id) and static addresses;
  with ``defer_aliases`` the copy joins every network *without* the old container's aliases
  (a ``rolling`` clone must not get traffic before its health gate passes: Docker's DNS answers
  an alias for every running holder), and :func:`attach_aliases` adds them later;
- ``RestartPolicy``: ``no`` until the swap commits (:func:`restore_restart_policy`), so a
  daemon restart mid-rotation cannot bring back a clone that never passed its health gate;
- legacy links come back in the ``name:alias`` form create accepts.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.containers.client import docker_errors
from kernel.containers.view import ContainerView, NetworkAttachment, is_anonymous_bind
from kernel.errors import DockerNotFoundError
from kernel.secret_value import SecretValue

if TYPE_CHECKING:
    import docker


@dataclass(frozen=True, slots=True)
class CloneSpec:
    """Everything needed to create the copy; secret values stay masked until :func:`create`."""

    name: str
    #: The create body without the replaced variables (``Config`` + ``HostConfig`` +
    #: ``NetworkingConfig``).
    body: Mapping[str, Any]
    #: Networks connected after create, before start.
    extra_networks: tuple[NetworkAttachment, ...]
    #: Variable → new value, merged into ``Env`` by :func:`create`.
    env: Mapping[str, SecretValue] = field(default_factory=dict, repr=False)
    #: The old container's restart policy, given to the copy once it holds the name.
    restart_policy: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"CloneSpec({self.name!r}, env={sorted(self.env)})"


def clone_spec(
    old: ContainerView,
    *,
    name: str,
    env: Mapping[str, SecretValue] | None = None,
    labels: Mapping[str, str] | None = None,
    image: str | None = None,
    bind_sources: Mapping[str, str] | None = None,
    defer_aliases: bool = False,
) -> CloneSpec:
    """The spec of a copy of ``old`` called ``name`` with ``env`` and ``labels`` replaced.

    ``image`` is the image reference to create from (see :func:`resolve_image`); default: the
    reference ``old`` was created with. ``bind_sources`` maps a bind mount's destination in the
    container to the host path the copy mounts there instead. ``defer_aliases``: join the
    networks without the old container's aliases (see the module docstring).
    """
    config: dict[str, Any] = copy.deepcopy(dict(old.config))
    host_config: dict[str, Any] = copy.deepcopy(dict(old.host_config))
    if config.get("Hostname") == old.short_id:
        del config["Hostname"]
    config["Image"] = image or config.get("Image") or old.image_id
    config["Labels"] = {**(config.get("Labels") or {}), **(labels or {})}
    host_config["Links"] = _create_links(host_config.get("Links"))
    _reuse_implicit_volumes(old, host_config)
    if bind_sources:
        _replace_bind_sources(host_config, bind_sources)
    restart_policy = dict(host_config.get("RestartPolicy") or {})
    host_config["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}

    primary = old.primary_network
    attachments = old.networks
    if defer_aliases:
        attachments = [dataclasses.replace(a, aliases=()) for a in attachments]
    endpoints: dict[str, Any] = {}
    extra: list[NetworkAttachment] = []
    for attachment in attachments:
        if attachment.name == primary:
            endpoints[attachment.name] = _endpoint(attachment, default_bridge=primary == "bridge")
        else:
            extra.append(attachment)
    body = {**config, "HostConfig": host_config, "NetworkingConfig": {"EndpointsConfig": endpoints}}
    return CloneSpec(
        name=name,
        body=body,
        extra_networks=tuple(extra),
        env=dict(env or {}),
        restart_policy=restart_policy,
    )


def resolve_image(client: docker.DockerClient, old: ContainerView) -> str:
    """The reference to create the copy from: as written, unless it now names another image."""
    written = str(old.config.get("Image") or "")
    if not written or written.startswith("sha256:"):
        return written or old.image_id
    try:
        with docker_errors(f"inspecting image {written}"):
            current = client.api.inspect_image(written)["Id"]
    except DockerNotFoundError:
        return old.image_id
    return written if current == old.image_id else old.image_id


def create(client: docker.DockerClient, spec: CloneSpec) -> str:
    """Create the copy (not started), connect its extra networks; returns its id.

    This is where new environment values leave dso: they are revealed into the request body
    and nowhere else. On a failure after create the half-made copy is removed.
    """
    body = dict(spec.body)
    body["Env"] = _merged_env(body.get("Env") or [], spec.env)
    with docker_errors(f"creating container {spec.name}"):
        created = client.api.create_container_from_config(body, name=spec.name)
    container_id = str(created["Id"])
    try:
        for network in spec.extra_networks:
            connect(client, container_id, network)
    except BaseException:
        with docker_errors(f"removing the half-created {spec.name}"):
            client.api.remove_container(container_id, force=True)
        raise
    return container_id


def connect(client: docker.DockerClient, container: str, network: NetworkAttachment) -> None:
    """Connect ``container`` to ``network`` with its aliases and static addresses."""
    with docker_errors(f"connecting {container[:12]} to network {network.name}"):
        client.api.connect_container_to_network(
            container,
            network.network_id,
            ipv4_address=network.ipv4,
            ipv6_address=network.ipv6,
            aliases=list(network.aliases) or None,
            links=list(network.links) or None,
            link_local_ips=list(network.link_local) or None,
            driver_opt=dict(network.driver_opts) if network.driver_opts else None,
        )


def _merged_env(env: list[str], replacements: Mapping[str, SecretValue]) -> list[str]:
    remaining = dict(replacements)
    merged = []
    for item in env:
        key = item.partition("=")[0]
        if key in remaining:
            merged.append(f"{key}={remaining.pop(key).reveal_text()}")
        else:
            merged.append(item)
    merged.extend(f"{key}={value.reveal_text()}" for key, value in remaining.items())
    return merged


def _endpoint(attachment: NetworkAttachment, *, default_bridge: bool) -> dict[str, Any]:
    endpoint: dict[str, Any] = {}
    ipam: dict[str, Any] = {}
    if attachment.ipv4:
        ipam["IPv4Address"] = attachment.ipv4
    if attachment.ipv6:
        ipam["IPv6Address"] = attachment.ipv6
    if attachment.link_local:
        ipam["LinkLocalIPs"] = list(attachment.link_local)
    if ipam:
        endpoint["IPAMConfig"] = ipam
    # The default bridge refuses network-scoped aliases.
    if attachment.aliases and not default_bridge:
        endpoint["Aliases"] = list(attachment.aliases)
    if attachment.links:
        endpoint["Links"] = list(attachment.links)
    if attachment.driver_opts:
        endpoint["DriverOpts"] = dict(attachment.driver_opts)
    return endpoint


def _create_links(links: Any) -> list[str] | None:
    """Inspect shows ``/other:/me/alias``; create wants ``other:alias``."""
    if not links:
        return None
    converted = []
    for link in links:
        source, _, target = str(link).partition(":")
        converted.append(f"{source.lstrip('/')}:{target.rsplit('/', 1)[-1]}")
    return converted


def _reuse_implicit_volumes(old: ContainerView, host_config: dict[str, Any]) -> None:
    """Mount the old container's anonymous volumes by name instead of declaring new ones."""
    implicit = [v for v in old.volumes if v.implicit]
    if not implicit:
        return
    if host_config.get("Binds"):
        host_config["Binds"] = [b for b in host_config["Binds"] if not is_anonymous_bind(b)]
    mounts = [
        m
        for m in host_config.get("Mounts") or []
        if not (m.get("Type") == "volume" and not m.get("Source"))
    ]
    for volume in implicit:
        mounts.append(
            {
                "Type": "volume",
                "Source": volume.name,
                "Target": volume.destination,
                "ReadOnly": not volume.read_write,
            }
        )
    host_config["Mounts"] = mounts


def _replace_bind_sources(host_config: dict[str, Any], sources: Mapping[str, str]) -> None:
    """Point the bind mounts at ``sources``' destinations to their new host paths.

    A bind is in ``Binds`` (``src:dst[:opts]``, ``docker run -v``) or in ``Mounts`` (``--mount``,
    compose's long syntax); both forms are rewritten in place, options kept.
    """
    binds = []
    for bind in host_config.get("Binds") or []:
        parts = str(bind).split(":")
        if len(parts) >= 2 and parts[1] in sources:
            parts[0] = sources[parts[1]]
        binds.append(":".join(parts))
    if binds:
        host_config["Binds"] = binds
    for mount in host_config.get("Mounts") or []:
        if mount.get("Type") == "bind" and mount.get("Target") in sources:
            mount["Source"] = sources[mount["Target"]]

"""A typed, read-only view of one container's ``docker inspect`` document.

The rotation machinery reads the inspect document in many places (cloning, choosing a strategy,
health gating, recovery); this module is the one that knows its shape on API 1.41, so the others
ask questions (``view.static_addresses``) instead of walking nested dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: ``<name>_dso_new_<id>`` / ``<name>_dso_backup_<id>``: the temporary names of a rotation.
TEMP_NAME = re.compile(r"^(?P<target>.+)_dso_(?P<kind>new|backup)_(?P<rotation>[0-9a-f]{8})$")


def new_name(target: str, rotation_id: str) -> str:
    return f"{target}_dso_new_{rotation_id}"


def backup_name(target: str, rotation_id: str) -> str:
    return f"{target}_dso_backup_{rotation_id}"


@dataclass(frozen=True, slots=True)
class NetworkAttachment:
    """One network the container is connected to, as needed to connect a copy the same way."""

    name: str
    network_id: str
    #: Aliases without the container's own short id (Docker adds that one by itself).
    aliases: tuple[str, ...]
    #: Static addresses the user asked for (IPAMConfig), not the ones Docker assigned.
    ipv4: str | None
    ipv6: str | None
    link_local: tuple[str, ...]
    links: tuple[str, ...]
    driver_opts: Mapping[str, str] | None
    #: The address Docker assigned (for host-side probes).
    ip_address: str | None

    @property
    def static(self) -> bool:
        return bool(self.ipv4 or self.ipv6)


@dataclass(frozen=True, slots=True)
class VolumeMount:
    """A volume (named or anonymous) mounted into the container."""

    name: str
    destination: str
    read_write: bool
    #: Anonymous: no name was given (``Config.Volumes``, an image ``VOLUME``, ``-v /path``,
    #: ``--mount type=volume,dst=/path``). Docker would create a fresh empty one for a copy
    #: unless the copy is told to mount this one by name.
    implicit: bool


class ContainerView:
    """Questions about one inspect document; ``raw`` is the document itself."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"ContainerView({self.name!r}, {self.short_id})"

    # -- identity ---------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return str(self.raw["Id"])

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return str(self.raw.get("Name", "")).lstrip("/")

    @property
    def config(self) -> Mapping[str, Any]:
        return self.raw.get("Config") or {}

    @property
    def host_config(self) -> Mapping[str, Any]:
        return self.raw.get("HostConfig") or {}

    @property
    def labels(self) -> Mapping[str, str]:
        return self.config.get("Labels") or {}

    @property
    def image_id(self) -> str:
        return str(self.raw.get("Image", ""))

    @property
    def state(self) -> Mapping[str, Any]:
        return self.raw.get("State") or {}

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running"))

    @property
    def health_status(self) -> str | None:
        health = self.state.get("Health")
        return str(health.get("Status")) if health else None

    @property
    def env_names(self) -> list[str]:
        return [item.partition("=")[0] for item in self.config.get("Env") or []]

    # -- stopping ---------------------------------------------------------------------------

    @property
    def stop_signal(self) -> str:
        return str(self.config.get("StopSignal") or "SIGTERM")

    @property
    def stop_timeout(self) -> int:
        """The grace period ``docker stop`` gives this container (Docker's default: 10 s)."""
        value = self.config.get("StopTimeout")
        return int(value) if value is not None else 10

    # -- networks ---------------------------------------------------------------------------

    @property
    def network_mode(self) -> str:
        return str(self.host_config.get("NetworkMode") or "default")

    @property
    def primary_network(self) -> str | None:
        """The network named by NetworkMode (the one given at create time), if it is one."""
        mode = self.network_mode
        if mode in ("host", "none") or mode.startswith("container:"):
            return None
        if mode == "default":
            return "bridge"
        networks = (self.raw.get("NetworkSettings") or {}).get("Networks") or {}
        if mode in networks:
            return mode
        for name, settings in networks.items():
            if str(settings.get("NetworkID", "")).startswith(mode):
                return str(name)
        return mode

    @property
    def networks(self) -> list[NetworkAttachment]:
        found = []
        networks = (self.raw.get("NetworkSettings") or {}).get("Networks") or {}
        for name, settings in networks.items():
            ipam = settings.get("IPAMConfig") or {}
            aliases = tuple(
                a for a in settings.get("Aliases") or () if a not in (self.short_id, self.id)
            )
            found.append(
                NetworkAttachment(
                    name=str(name),
                    network_id=str(settings.get("NetworkID") or name),
                    aliases=aliases,
                    ipv4=ipam.get("IPv4Address") or None,
                    ipv6=ipam.get("IPv6Address") or None,
                    link_local=tuple(ipam.get("LinkLocalIPs") or ()),
                    links=tuple(settings.get("Links") or ()),
                    driver_opts=settings.get("DriverOpts") or None,
                    ip_address=settings.get("IPAddress") or None,
                )
            )
        return found

    @property
    def static_addresses(self) -> list[str]:
        """Static IPs (``--ip``/``ipv4_address``) and a fixed MAC: no two holders at once."""
        found = [f"{n.name}:{ip}" for n in self.networks for ip in (n.ipv4, n.ipv6) if ip]
        if self.config.get("MacAddress"):
            found.append(f"mac:{self.config['MacAddress']}")
        return found

    @property
    def ip_address(self) -> str | None:
        """An address the host can reach the container at (first network with one)."""
        for network in self.networks:
            if network.ip_address:
                return network.ip_address
        return None

    # -- ports and volumes ----------------------------------------------------------------

    @property
    def fixed_host_ports(self) -> list[str]:
        """Published ports with a fixed host port (``-p 8080:80``): only one holder at a time."""
        found = []
        bindings = self.host_config.get("PortBindings") or {}
        for container_port, binds in sorted(bindings.items()):
            for bind in binds or ():
                host_port = str(bind.get("HostPort") or "")
                if host_port and host_port != "0":
                    host = bind.get("HostIp") or "0.0.0.0"  # noqa: S104 - describing, not binding
                    found.append(f"{host}:{host_port}->{container_port}")
        return found

    @property
    def volumes(self) -> list[VolumeMount]:
        declared = {dst for src, dst in _binds(self.host_config.get("Binds") or ()) if src}
        declared |= {
            str(m.get("Target")) for m in self.host_config.get("Mounts") or () if m.get("Source")
        }
        found = []
        for mount in self.raw.get("Mounts") or ():
            if mount.get("Type") != "volume":
                continue
            destination = str(mount.get("Destination"))
            found.append(
                VolumeMount(
                    name=str(mount.get("Name")),
                    destination=destination,
                    read_write=bool(mount.get("RW", True)),
                    implicit=destination not in declared,
                )
            )
        return found

    def bind_source(self, destination: str) -> str | None:
        """The host path bind-mounted at ``destination`` in the container, if any."""
        for mount in self.raw.get("Mounts") or ():
            if mount.get("Type") == "bind" and mount.get("Destination") == destination:
                return str(mount.get("Source"))
        return None

    # -- health -----------------------------------------------------------------------------

    @property
    def healthcheck_test(self) -> list[str] | None:
        """The container's HEALTHCHECK test (image's merged in by Docker), None when absent."""
        health = self.config.get("Healthcheck") or {}
        test = health.get("Test")
        if not test or test[0] == "NONE":
            return None
        return [str(part) for part in test]

    @property
    def healthcheck_timeout(self) -> float | None:
        value = (self.config.get("Healthcheck") or {}).get("Timeout")
        return int(value) / 1e9 if value else None

    @property
    def shell(self) -> list[str]:
        """The shell a ``CMD-SHELL`` healthcheck runs in (Docker's ``SHELL``, default sh -c)."""
        shell = self.config.get("Shell")
        return [str(part) for part in shell] if shell else ["/bin/sh", "-c"]


def _binds(binds: Any) -> list[tuple[str, str]]:
    """``(source, destination)`` of ``-v`` strings; ``dst`` alone (no source) is anonymous."""
    found = []
    for bind in binds:
        parts = str(bind).split(":")
        found.append((parts[0], parts[1]) if len(parts) >= 2 else ("", parts[0]))
    return found


def is_anonymous_bind(bind: str) -> bool:
    """True for a ``Binds`` entry that names no source (``/data``): an anonymous volume."""
    return ":" not in str(bind)

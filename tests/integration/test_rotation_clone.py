"""A rotated container is a faithful copy: `docker inspect` of old and new differ only where a
new container must (ids, paths, runtime state) and where the rotation meant it to (the env
value, the rotation label). Anything else that differs fails the test, by its path."""

from __future__ import annotations

import re
from typing import Any

import docker.types
import pytest

from tests.integration.rotation_support import (
    IMAGE,
    Scope,
    engine_factory,
    env_changes,
    free_port,
    scope,
)

pytestmark = pytest.mark.integration
__all__ = ["engine_factory", "scope"]

#: Paths (regex over dotted inspect paths) allowed to differ between old and new.
ALLOWED = [
    r"Id",
    r"Created",
    r"State\..*",
    r"(ResolvConf|Hostname|Hosts|Log)Path",
    r"GraphDriver\..*",
    r"RestartCount",
    r"ExecIDs",
    r"Config\.Env",  # checked below: only MSG differs
    r"Config\.Labels\.dso\.rotation(\.owner)?",
    r"NetworkSettings\.(SandboxID|SandboxKey)",
    # Dynamically assigned per endpoint (the static address is compared: see below).
    r"NetworkSettings\.Networks\.[^.]+\.(EndpointID|MacAddress)",
    r"NetworkSettings\.Networks\.dynamic\.IPAddress",
]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


def normalise(doc: dict[str, Any], implicit: set[str]) -> dict[str, Any]:
    """Order-insensitive lists; the container's own short-id alias; dso's reuse of implicit
    volumes (the new container mounts the old one's anonymous volume by name)."""
    doc = {**doc}
    doc["Mounts"] = sorted(
        (m["Type"], m.get("Name") or m.get("Source"), m["Destination"], m["RW"])
        for m in doc["Mounts"]
    )
    host = {**doc["HostConfig"]}
    # Anonymous volumes are compared by name in doc["Mounts"] (the same ones must be mounted).
    host["Mounts"] = sorted(
        (m["Type"], m.get("Source"), m["Target"])
        for m in host.get("Mounts") or []
        if m.get("Source") and m.get("Source") not in implicit
    )
    host["Binds"] = sorted(b for b in host.get("Binds") or [] if ":" in b)
    doc["HostConfig"] = host
    networks = {}
    for name, settings in doc["NetworkSettings"]["Networks"].items():
        short = doc["Id"][:12]
        key = "static" if settings.get("IPAMConfig") else "dynamic"
        networks[key] = {
            **settings,
            "Aliases": sorted(a for a in settings["Aliases"] or [] if a != short),
            "name": name,
        }
    doc["NetworkSettings"] = {**doc["NetworkSettings"], "Networks": networks}
    return doc


def test_rotated_container_is_a_faithful_clone(scope: Scope, engine_factory) -> None:
    static_net = scope.network("static", ipam=_ipam("172.29.240.0/24"))
    dynamic_net = scope.network("dynamic")
    named = scope.volume("data")
    port = free_port()
    api = scope.client.api
    host_config = api.create_host_config(
        port_bindings={8080: ("127.0.0.1", port)},
        # A named volume, a bind mount, and anonymous volumes in each of their forms.
        binds=[f"{named}:/data:rw", "/etc/hostname:/h:ro", "/anon1"],
        mounts=[docker.types.Mount("/anon2", None, type="volume")],
        tmpfs={"/run/scratch": "size=1m", "/tmp": ""},
        cap_add=["NET_ADMIN"],
        cap_drop=["MKNOD"],
        ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=2048)],
        mem_limit="64m",
        nano_cpus=500_000_000,
        pids_limit=100,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
        extra_hosts={"db.local": "10.1.2.3"},
        dns=["10.0.0.53"],
        dns_search=["example.internal"],
        dns_opt=["ndots:2"],
        sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
        init=True,
        shm_size="8m",
        security_opt=["no-new-privileges"],
        devices=["/dev/null:/dev/xnull:rwm"],
        log_config=docker.types.LogConfig(type="json-file", config={"max-size": "1m"}),
        group_add=["123"],
        oom_score_adj=10,
        read_only=True,
        network_mode=static_net,
    )
    created = api.create_container(
        IMAGE,
        ["mkdir -p /tmp/x && exec sleep 600"],
        name=scope.name("rich"),
        labels=scope.labels(
            **{
                "com.docker.compose.project": "shop",
                "com.docker.compose.service": "api",
                "com.docker.compose.config-hash": "abc123",
                "app.tier": "backend",
            }
        ),
        entrypoint=["/bin/sh", "-c"],
        environment={"MSG": "old", "OTHER": "kept=with=equals"},
        hostname="api-host",
        domainname="example.internal",
        user="0:0",
        working_dir="/",
        ports=[8080],
        volumes=["/anon0"],  # Config.Volumes, as an image VOLUME would declare it
        healthcheck={"test": ["CMD", "true"], "interval": 30 * 10**9, "retries": 2},
        stop_signal="SIGUSR1",
        stop_timeout=3,
        host_config=host_config,
        networking_config=api.create_networking_config(
            {
                static_net: api.create_endpoint_config(
                    aliases=["api", "api-static"], ipv4_address="172.29.240.10"
                )
            }
        ),
    )
    container = scope.client.containers.get(created["Id"])
    scope.client.api.connect_container_to_network(container.id, dynamic_net, aliases=["api-dyn"])
    container.start()
    old = scope.inspect(container.name)
    implicit = {m["Name"] for m in old["Mounts"] if m["Type"] == "volume" and m["Name"] != named}
    scope.extra_volumes += sorted(implicit)

    engine = engine_factory(timeout=10.0)
    outcome = engine.rotate(container.name, env_changes(MSG="new"))

    assert outcome.status == "completed", outcome.error
    assert outcome.plan is not None and outcome.plan.strategy.value == "restart"
    new = scope.inspect(container.name)
    assert new["Id"] != old["Id"] and new["State"]["Running"]
    before = flatten(normalise(old, implicit))
    after = flatten(normalise(new, implicit))
    differing = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    unexpected = [p for p in differing if not any(re.fullmatch(a, p) for a in ALLOWED)]
    assert unexpected == [], {p: (before.get(p), after.get(p)) for p in unexpected}
    # The allowed differences are the intended ones.
    assert sorted(old["Config"]["Env"]) == sorted(
        "MSG=old" if e == "MSG=new" else e for e in new["Config"]["Env"]
    )
    assert new["Config"]["Labels"]["dso.rotation"] == outcome.rotation_id
    assert new["NetworkSettings"]["Networks"][static_net]["IPAddress"] == "172.29.240.10"
    assert "com.docker.compose.config-hash" in new["Config"]["Labels"]


def _ipam(subnet: str) -> Any:
    return docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])

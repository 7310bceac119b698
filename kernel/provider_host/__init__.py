"""The kernel's provider host: discovery, verification, processes, clients and supervision.

    from kernel.provider_host import ProviderHost

    with ProviderHost(config, layout) as host:
        result = host.client("vault").get([SecretRef("r1", "app/db", field="password")])

Modules: ``discovery`` (plugins directory, a release's own providers, source mode), ``verify``
(SHA256SUMS), ``process`` (spawn, pipes, stderr logs, stop and reap), ``client`` (one process:
handshake, pipelined requests, deadlines), ``breaker`` (circuit breaker), ``stats`` (latency),
``registry`` (:class:`ProviderHost`: one supervised process per provider, restarts).
docs/providers.md is the user documentation; docs/provider-protocol.md the wire contract.
"""

from __future__ import annotations

from kernel.provider_host.breaker import (
    TRANSITIONS,
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    Ticket,
)
from kernel.provider_host.client import ProviderClient
from kernel.provider_host.discovery import (
    PLUGINS_DIR_ENV,
    Discovery,
    Found,
    Rejected,
    discover,
    find_command,
    plugins_dir,
    run_describe,
    source_command,
)
from kernel.provider_host.process import (
    ORIGIN_PATH,
    ORIGIN_PLUGINS_DIR,
    ORIGIN_RELEASE,
    ORIGIN_SOURCE,
    ProviderCommand,
    ProviderProcess,
)
from kernel.provider_host.registry import Plan, ProviderHost
from kernel.provider_host.settings import wire_settings
from kernel.provider_host.stats import LatencyStats, MethodStats
from kernel.provider_host.supervisor import Backoff, SupervisedProvider
from kernel.provider_host.verify import MANIFEST_NAME, UNVERIFIED_ENV, Manifest, read_manifest

__all__ = [
    "MANIFEST_NAME",
    "ORIGIN_PATH",
    "ORIGIN_PLUGINS_DIR",
    "ORIGIN_RELEASE",
    "ORIGIN_SOURCE",
    "PLUGINS_DIR_ENV",
    "TRANSITIONS",
    "UNVERIFIED_ENV",
    "Backoff",
    "BreakerEvent",
    "BreakerState",
    "CircuitBreaker",
    "Discovery",
    "Found",
    "LatencyStats",
    "Manifest",
    "MethodStats",
    "Plan",
    "ProviderClient",
    "ProviderCommand",
    "ProviderHost",
    "ProviderProcess",
    "Rejected",
    "SupervisedProvider",
    "Ticket",
    "discover",
    "find_command",
    "plugins_dir",
    "read_manifest",
    "run_describe",
    "source_command",
    "wire_settings",
]

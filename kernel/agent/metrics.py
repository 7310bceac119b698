"""Prometheus metrics of the agent, with ``prometheus_client`` (docs/agent.md#metrics lists them).

Each agent has its own :class:`~prometheus_client.CollectorRegistry`, never the global one: two
agents in one process (tests) would otherwise mix their figures, and the second could not even
register its metrics. Two kinds of families:

- *what happened* (counters, histograms) is recorded by a listener on the agent's event bus and
  one on kernel telemetry (provider calls are too many for the bus). Both run on the publishing
  thread, so they only increment; the telemetry listener is process-wide, so two agents in one
  process would both count each other's provider calls;
- *what is* (breaker states, the cache, the managed containers, the scheduler's queue) is read
  from the agent when scraped, by :class:`_StateCollector`: nothing to keep in step, nothing
  stale after a reload.

Label values that come from outside (Docker's action names, a socket client's action) are
bounded (:class:`_Bounded`): past :data:`MAX_LABEL_VALUES` distinct values a family counts the
rest as ``other``, so a client inventing action names cannot grow the agent's memory. Never a
value: labels are provider, method, strategy, outcome and action names.

Exposed by the socket's ``metrics`` action, and over TCP on ``agent.metrics.listen`` when set
(:mod:`kernel.agent.metrics_listener`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from kernel import __version__, telemetry
from kernel.log import get_logger

if TYPE_CHECKING:
    from kernel.agent.bus import Event
    from kernel.agent.daemon import Agent
    from kernel.agent.metrics_listener import MetricsListener

#: The text exposition format ``render`` produces.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Prefix of every family (``dso_process_*`` included).
NAMESPACE = "dso"
#: Value of ``dso_provider_breaker_state`` per breaker state (kernel.provider_host.breaker).
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
#: Distinct values a label fed from outside may take before the rest count as ``other``.
MAX_LABEL_VALUES = 64
#: A rotation is seconds (a health gate included) to minutes (slow starts, rolling replicas).
ROTATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
#: A provider call is milliseconds (local vault) to its timeout (10 s by default).
PROVIDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The gate probes every ~100 ms until the new container passes, or ``agent.rotation.timeout``.
HEALTH_GATE_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

log = get_logger("agent.metrics")


class _Bounded:
    """A label value from outside, as is while fewer than ``limit`` distinct values were seen."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = _label(value)
        with self._lock:
            if text in self._seen:
                return text
            if len(self._seen) < self.limit:
                self._seen.add(text)
                return text
        return "other"


def _label(value: object) -> str:
    """A label value: ``unknown`` for a field that is absent or empty."""
    return "unknown" if value is None or value == "" else str(value)


class AgentMetrics:
    """The agent's registry, the listeners that feed it, and the optional TCP listener."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        # No ``*_created`` series beside each counter and histogram: in the text format they are
        # gauges of their own, twice the series for a start time dso_process_start_time_seconds
        # already gives. (A process-wide switch of prometheus_client; dso has no other metrics.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self._listener: MetricsListener | None = None
        self._untelemetry: Callable[[], None] | None = None
        registry = self.registry
        # -- rotations ------------------------------------------------------------------------
        self.rotation_seconds = Histogram(
            "dso_rotation_duration_seconds",
            "Rotations of a target (a compose service or a container outside compose), from "
            "start to outcome, by strategy and outcome.",
            ["strategy", "outcome"],
            buckets=ROTATION_BUCKETS,
            registry=registry,
        )
        self.container_rotations = Counter(
            "dso_container_rotations_total",
            "Containers rotated by the agent, by outcome (one per container a rotation "
            "covered: completed, rolled_back, failed, skipped, up_to_date...).",
            ["outcome"],
            registry=registry,
        )
        self.recoveries = Counter(
            "dso_recoveries_total",
            "Interrupted rotations converged at start, by action and result (ok, failed).",
            ["action", "result"],
            registry=registry,
        )
        self.health_gates = Counter(
            "dso_health_gates_total",
            "Health gates of new containers, by outcome (healthy, unhealthy).",
            ["outcome"],
            registry=registry,
        )
        self.health_gate_seconds = Histogram(
            "dso_health_gate_duration_seconds",
            "Time a new container took to pass (or fail) its health gate, by outcome.",
            ["outcome"],
            buckets=HEALTH_GATE_BUCKETS,
            registry=registry,
        )
        self.lock_contentions = Counter(
            "dso_lock_contentions_total",
            "Rotation lock acquisitions that waited more than 1 s (another rotation held it).",
            registry=registry,
        )
        # -- providers ------------------------------------------------------------------------
        self.provider_seconds = Histogram(
            "dso_provider_call_duration_seconds",
            "Requests to provider processes, by provider and method, failed ones included.",
            ["provider", "method"],
            buckets=PROVIDER_BUCKETS,
            registry=registry,
        )
        self.provider_errors = Counter(
            "dso_provider_call_errors_total",
            "Provider requests answered with an error or timed out, by provider and method.",
            ["provider", "method"],
            registry=registry,
        )
        self.breaker_transitions = Counter(
            "dso_breaker_transitions_total",
            "Circuit breaker changes, by provider and the state entered.",
            ["provider", "state"],
            registry=registry,
        )
        self.checks = Counter(
            "dso_checks_total",
            "Checks of the managed secrets' versions, by what started them (poll, watch).",
            ["source"],
            registry=registry,
        )
        # -- what reaches the agent -----------------------------------------------------------
        self.docker_events = Counter(
            "dso_docker_events_total",
            "Docker events received (container, network, volume), by object and action.",
            ["object", "action"],
            registry=registry,
        )
        self.webhook_requests = Counter(
            "dso_webhook_requests_total",
            "Requests to the inbound webhook, by outcome (accepted, duplicate, rejected).",
            ["outcome"],
            registry=registry,
        )
        self.api_requests = Counter(
            "dso_api_requests_total",
            "Requests answered on the agent's socket, by action and status.",
            ["action", "status"],
            registry=registry,
        )
        self.api_denied = Counter(
            "dso_api_denied_total",
            "Socket callers refused by their peer credentials (not root, the agent's user or "
            "group dso).",
            registry=registry,
        )
        ProcessCollector(namespace=NAMESPACE, registry=registry)
        registry.register(_StateCollector(agent))
        self._docker_action = _Bounded()
        self._api_action = _Bounded()
        self._handlers: dict[str, Callable[[Event], None]] = {
            "rotation": self._on_rotation,
            "recovery": self._on_recovery,
            "health_gate": self._on_health_gate,
            "lock_contention": lambda _: self.lock_contentions.inc(),
            "breaker": self._on_breaker,
            "check": lambda e: self.checks.labels(_label(e.get("source"))).inc(),
            "docker": self._on_docker,
            "webhook": lambda e: self.webhook_requests.labels(_label(e.get("outcome"))).inc(),
            "request": self._on_request,
            "denied": lambda _: self.api_denied.inc(),
        }
        agent.bus.listen(self._on_event)
        # Provider calls made before start() (recovery, re-delivery) count too.
        self._untelemetry = telemetry.listen(self._on_telemetry)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Serve ``agent.metrics.listen`` over HTTP when configured (ConfigError if it cannot
        bind)."""
        listen = self.agent.runtime.config.agent.metrics.listen
        if listen is None:
            return
        from kernel.agent.metrics_listener import MetricsListener

        self._listener = MetricsListener(listen, self.registry)
        self._listener.start()
        host, port = self._listener.address
        log.info("Metrics listening on http://%s/metrics", _host_port(host, port))

    @property
    def address(self) -> tuple[str, int] | None:
        """The TCP listener's bound ``(host, port)``, or ``None`` without one."""
        return None if self._listener is None else self._listener.address

    def render(self) -> bytes:
        """Every family in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Stop the TCP listener and stop counting provider calls (idempotent)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        stop, self._untelemetry = self._untelemetry, None
        if stop is not None:
            stop()

    # -- events -----------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        handler = self._handlers.get(event["type"])
        if handler is not None:
            handler(event)

    def _on_telemetry(self, name: str, fields: dict[str, Any]) -> None:
        if name != "provider_call":
            return
        labels = (_label(fields.get("provider")), _label(fields.get("method")))
        self.provider_seconds.labels(*labels).observe(float(fields.get("seconds") or 0.0))
        if not fields.get("ok"):
            self.provider_errors.labels(*labels).inc()

    def _on_rotation(self, event: Event) -> None:
        strategy, outcome = _label(event.get("strategy")), _label(event.get("status"))
        self.rotation_seconds.labels(strategy, outcome).observe(float(event.get("seconds") or 0))
        for status in (event.get("outcomes") or {}).values():
            self.container_rotations.labels(_label(status)).inc()

    def _on_recovery(self, event: Event) -> None:
        result = "ok" if event.get("ok") else "failed"
        self.recoveries.labels(_label(event.get("action")), result).inc()

    def _on_health_gate(self, event: Event) -> None:
        outcome = "healthy" if event.get("healthy") else "unhealthy"
        self.health_gates.labels(outcome).inc()
        self.health_gate_seconds.labels(outcome).observe(float(event.get("seconds") or 0.0))

    def _on_breaker(self, event: Event) -> None:
        provider, state = _label(event.get("provider")), _label(event.get("state"))
        self.breaker_transitions.labels(provider, state).inc()

    def _on_docker(self, event: Event) -> None:
        action = self._docker_action(event.get("action"))
        self.docker_events.labels(_label(event.get("object")), action).inc()

    def _on_request(self, event: Event) -> None:
        action = self._api_action(event.get("action"))
        self.api_requests.labels(action, _label(event.get("status"))).inc()


class _StateCollector(Collector):
    """The agent's state, read at scrape time. Each part is read on its own: one that fails
    (the runtime closed during shutdown) leaves its family without samples (logged at DEBUG),
    never the scrape without an answer."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def describe(self) -> Iterable[Metric]:
        # Names only, so registering does not collect (the agent is not built yet then).
        return [family for family, _ in self._families()]

    def collect(self) -> Iterator[Metric]:
        for family, fill in self._families():
            try:
                fill(family)
            except Exception:
                log.debug("metrics: %s not read", family.name, exc_info=True)
                family.samples = []
            yield family

    def _families(self) -> list[tuple[GaugeMetricFamily, Callable[[GaugeMetricFamily], None]]]:
        return [
            (
                GaugeMetricFamily(
                    "dso_agent_info",
                    "The running agent: version and mode (local, agent); always 1.",
                    labels=["version", "mode"],
                ),
                self._info,
            ),
            (
                GaugeMetricFamily(
                    "dso_agent_live",
                    "1 when the agent is live (Docker connection, event watcher, scheduler and "
                    "change checks running), else 0: the socket's health action.",
                ),
                lambda f: f.add_metric([], 0.0 if self.agent.health() else 1.0),
            ),
            (
                GaugeMetricFamily(
                    "dso_provider_breaker_state",
                    "Circuit breaker of each started provider: 0 closed, 1 half-open, 2 open.",
                    labels=["provider"],
                ),
                self._breakers,
            ),
            (
                GaugeMetricFamily("dso_cache_entries", "Values held in the last-known-good cache."),
                lambda f: f.add_metric([], float(self.agent.cache.stats()["entries"])),
            ),
            (
                GaugeMetricFamily("dso_cache_bytes", "Bytes of values held in the cache."),
                lambda f: f.add_metric([], float(self.agent.cache.stats()["bytes"])),
            ),
            (
                GaugeMetricFamily(
                    "dso_cache_max_bytes", "The cache's bound (agent.cache.max_size)."
                ),
                lambda f: f.add_metric([], float(self.agent.cache.stats()["max_size"])),
            ),
            (
                GaugeMetricFamily(
                    "dso_managed_containers",
                    "Containers the agent manages (they carry dso secret references).",
                ),
                lambda f: f.add_metric([], float(len(self.agent.managed))),
            ),
            (
                GaugeMetricFamily(
                    "dso_rotation_queue_depth",
                    "Targets waiting to rotate (in their debounce window, or due again after "
                    "the rotation in flight).",
                ),
                lambda f: f.add_metric([], float(self.agent.scheduler.pending())),
            ),
            (
                GaugeMetricFamily("dso_rotations_in_progress", "Targets rotating now."),
                lambda f: f.add_metric([], float(self.agent.scheduler.rotating())),
            ),
        ]

    def _info(self, family: GaugeMetricFamily) -> None:
        family.add_metric([__version__, self.agent.runtime.layout.mode], 1.0)

    def _breakers(self, family: GaugeMetricFamily) -> None:
        providers = self.agent.runtime.host.status()["providers"]
        for name, doc in sorted(providers.items()):
            state = (doc.get("breaker") or {}).get("state")
            if state in BREAKER_STATES:
                family.add_metric([name], float(BREAKER_STATES[state]))


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

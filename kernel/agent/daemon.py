"""The agent: notices secret changes and rolls them out by itself (docs/agent.md).

Threads (the Docker SDK, the locks and the health gate are synchronous, so threads around one
scheduler are simpler than asyncio):

- ``dso-sources``: the change checks — every ``agent.watch.polling_interval`` (± 10 % jitter),
  at once after a provider ``watch`` notification, a webhook hint or a reconnect to the daemon,
  and a rescan of the managed containers after Docker events;
- ``dso-docker-events``: the daemon's event stream (:mod:`kernel.agent.docker_events`);
- ``dso-scheduler`` and the ``dso-rotate`` pool: debounce, coalesce, rotate
  (:mod:`kernel.agent.scheduler`), each rotation through the same
  :class:`~kernel.rotation.batch.Batch` as ``docker dso rotate``;
- provider reader threads deliver ``watch`` notifications (they only queue them).

Start: configuration → instance lock → Docker → recovery (interrupted rotations converged at
once when no process holds their lock, then rotated again when an interruption undid them) →
managed containers from labels → scheduler → event stream → first check (a secret changed while
the agent was down is rolled out now; unchanged secrets rotate nothing). Stop: no new work, the
rotations in flight get ``agent.rotation.timeout`` to reach a safe point (before the swap they
roll back and are rotated again at the next start), providers stopped.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from kernel import __version__, telemetry
from kernel.agent.bus import EventBus
from kernel.agent.cache import CachingResolver, ValueCache
from kernel.agent.checker import CheckResult, VersionChecker
from kernel.agent.deliveries import Deliveries
from kernel.agent.instance import InstanceLock
from kernel.agent.managed import Managed, ManagedFile, scan_managed
from kernel.agent.metrics import AgentMetrics
from kernel.agent.observability import Observability
from kernel.agent.redeliver import redeliver
from kernel.agent.scheduler import Reason, Scheduler
from kernel.agent.service_manager import ServiceManager
from kernel.agent.status_file import RuntimeFile
from kernel.agent.status_file import boot_id as _boot_id
from kernel.agent.swarm_services import SwarmScan, is_swarm_target, rotate_swarm, swarm_scan
from kernel.agent.watches import Hints, ProviderWatches
from kernel.errors import DSOError
from kernel.extensions.events import new_trace_id
from kernel.labels import REFS_LABEL
from kernel.log import get_logger
from kernel.rotation.targets import log_context

if TYPE_CHECKING:
    import docker

    from kernel.rotation.batch import TargetResult
    from kernel.rotation.targets import Target
    from kernel.runtime import Runtime

log = get_logger("agent")
#: Seconds between two looks at what no event announces (a provider restarted by its host).
HOUSEKEEPING = 2.0
#: Longest wait after start-up for the event stream before READY=1 is sent anyway.
READY_WAIT = 10.0
#: Docker container actions after which the managed set is scanned again.
_RESCAN_ACTIONS = frozenset({"start", "die", "destroy", "create", "rename"})
#: Reasons that name a rotation's trigger (else it is a change the agent noticed: ``watch``).
_TRIGGERS = ("recover", "api")
#: Kernel measurements repeated on the agent's event stream (provider calls are too many:
#: the metrics count them from telemetry directly).
_FORWARDED = frozenset({"breaker", "lock_contention", "health_gate"})


class Agent:
    """One agent on one :class:`~kernel.runtime.Runtime` (layout + configuration)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        connect: Callable[[], docker.DockerClient] | None = None,
        concurrency: int = 2,
        events: bool = True,
    ) -> None:
        from kernel.containers.client import connect as docker_connect

        self.runtime = runtime
        #: What happened, for the metrics, ``status`` and ``docker dso events``.
        self.bus = EventBus()
        self.started_at = time.time()
        self.observability = Observability(self.bus)
        self.metrics = AgentMetrics(self)
        #: Last known good values, served for re-deliveries while a provider is unreachable.
        self.cache = ValueCache.from_config(runtime.config.agent.cache)
        runtime.wrap_resolver(lambda inner: CachingResolver(inner, self.cache))
        self.connect = connect or docker_connect
        self.use_events = events
        self.stop_event = threading.Event()
        #: sd_notify (READY, STATUS, watchdog): a no-op outside a systemd unit.
        self.service = ServiceManager()
        self.checker = VersionChecker(runtime)
        self.instance = InstanceLock(runtime.layout.state)
        self.runtime_file = RuntimeFile(runtime.layout.state)
        self.managed_file = ManagedFile(runtime.layout.state)
        self.scheduler = Scheduler(
            self._rotate, window=runtime.config.agent.watch.debounce_window, concurrency=concurrency
        )
        self._client: docker.DockerClient | None = None
        self._managed: list[Managed] = []
        #: dso's Swarm services on this manager, as of the last check (kernel.agent.swarm_services).
        self._swarm: list[Managed] = []
        #: The last look at the swarm (role, services, update states) for ``status``.
        self.swarm: SwarmScan | None = None
        self._managed_lock = threading.Lock()
        self._wake = threading.Event()
        self._reload_requested = threading.Event()
        self._rescan = threading.Event()
        self._check_all = threading.Event()
        self._hints = Hints()
        self._watches = ProviderWatches(lambda p, paths: self.hint(p, paths, source="watch"))
        self._recheck_when_connected = False
        #: Versions queued per target, and those a target failed to take (not retried).
        self._deliveries = Deliveries()
        self._events: Any = None
        self._webhook: Any = None
        self._api: Any = None
        self._sources: threading.Thread | None = None
        self._untelemetry: Callable[[], None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Everything up to "listening": returns once the agent is watching."""
        runtime = self.runtime
        log.info(
            "Agent started, version %s",
            __version__,
            extra={"mode": runtime.layout.mode, "pid": _pid()},
        )
        where = str(runtime.config_path) if runtime.config_path else "built-in defaults"
        log.info("Configuration loaded from %s", where)
        self.instance.acquire()
        self._untelemetry = telemetry.listen(self._on_telemetry)
        try:
            self._client = self.connect()
            self._client.ping()
            log.info("Docker socket connected")
            previous = self.runtime_file.started(
                version=__version__, mode=runtime.layout.mode, config=runtime.config_path
            )
            if previous.get("running"):
                log.warning(
                    "recovery: the previous agent (pid %s) did not stop cleanly",
                    previous.get("pid"),
                )
            if previous.get("boot_id") and previous.get("boot_id") != _boot_id():
                log.info("the host was restarted since the previous agent ran")
            self.service.status("recovering interrupted rotations")
            resume = self._recover()
            self._set_managed(scan_managed(self._client, runtime.journal.owner))
            redeliver(runtime, self._client, self.managed)  # a reboot emptied the tmpfs
            self.scheduler.start()
            for target in resume:
                reason = Reason("recover", trace_id=new_trace_id())
                self.scheduler.submit(target, reason, now=True)
            if self.use_events:
                self._start_events()
            self._start_webhook()
            self._start_api()
            self.metrics.start()
            self._watches.update(self.runtime, self.managed)
            self._check_all.set()
            self._sources = threading.Thread(target=self._sources_loop, name="dso-sources")
            self._sources.daemon = True
            self._sources.start()
            self.bus.publish("started", version=__version__, pid=_pid(), mode=runtime.layout.mode)
        except BaseException:
            self._shutdown()
            raise

    def run(self, reload: Callable[[], None] | None = None) -> None:
        """:meth:`start`, then serve until :meth:`stop`, then shut down. ``reload`` is called
        (on this thread) after :meth:`request_reload` (SIGHUP)."""
        try:
            self.start()
        except DSOError as exc:
            self.service.status(f"failed to start: {exc.message}")
            raise
        # Recovery has run, Docker answered, the socket listens; once the event stream is up
        # too (moments later), `health` answers ok: systemd may start what needs the agent.
        deadline = time.monotonic() + READY_WAIT
        while self.health() and time.monotonic() < deadline and not self.stop_event.is_set():
            self.stop_event.wait(0.02)
        self.service.ready(self._serving())
        try:
            while not self.stop_event.is_set():
                self._reload_requested.wait(self.service.wait_time(1.0))
                if self._reload_requested.is_set() and not self.stop_event.is_set():
                    self._reload_requested.clear()
                    if reload is not None:
                        self.service.reloading()
                        reload()
                        self.service.ready(self._serving())
                self.service.heartbeat(self._serving(), self._dead_thread())
        finally:
            self.service.stopping()
            self._shutdown()

    def _serving(self) -> str:
        return (
            f"serving: {len(self.managed)} managed containers, "
            f"{self.scheduler.rotating()} rotating, {self.scheduler.pending()} waiting"
        )

    def _dead_thread(self) -> str | None:
        """A worker thread that died (the agent would do nothing more): no watchdog ping."""
        if not self.scheduler.alive:
            return "the rotation scheduler thread died"
        if self._sources is None or not self._sources.is_alive():
            return "the change checks thread died"
        return None

    def stop(self) -> None:
        """Ask the agent to stop (signal-safe)."""
        self.stop_event.set()
        self._wake.set()
        self._reload_requested.set()

    def request_reload(self) -> None:
        """Ask for the configuration to be read again (signal-safe)."""
        self._reload_requested.set()

    def reload(self, fresh: Runtime) -> None:
        """Apply a new, valid configuration: later checks and rotations use it; provider
        processes keep running when the providers' settings did not change."""
        old = self.runtime
        where = str(fresh.config_path) if fresh.config_path else "built-in defaults"
        if fresh.config == old.config:
            log.info("Configuration reloaded from %s: unchanged", where)
            fresh.close()
            return
        if (fresh.config.providers, fresh.config.default_provider) == (
            old.config.providers,
            old.config.default_provider,
        ):
            fresh.adopt_providers(old)
        fresh.wrap_resolver(lambda inner: CachingResolver(inner, self.cache))
        self.runtime = fresh
        self.checker.runtime = fresh
        self.scheduler.window = fresh.config.agent.watch.debounce_window
        self._watches.forget()
        self._rescan.set()
        self._check_all.set()
        self._wake.set()
        log.info("Configuration loaded from %s", where)
        threading.Thread(
            target=self._retire, args=(old,), name="dso-retire-config", daemon=True
        ).start()

    def reload_failed(self, message: str) -> None:
        """A SIGHUP found an invalid configuration: say where, keep the running one."""
        log.error("configuration not reloaded, the running one is kept: %s", message)

    def _retire(self, old: Runtime) -> None:
        """Close the replaced runtime once the rotations that may use it are done."""
        deadline = time.monotonic() + self.runtime.config.agent.rotation.timeout
        while self.scheduler.busy() and time.monotonic() < deadline:
            time.sleep(0.5)
        old.close()

    def _shutdown(self) -> None:
        self.stop_event.set()
        self._wake.set()
        self.bus.publish("stopping")
        if self._api is not None:
            self._api.stop()
        if self._sources is not None:
            self._sources.join(timeout=10)
        if self._events is not None:
            self._events.stop()
        if self._webhook is not None:
            self._webhook.stop()
        self.scheduler.stop(timeout=self.runtime.config.agent.rotation.timeout)
        self.runtime.close()
        if self._client is not None:
            self._client.close()
        self.runtime_file.stopped()
        self.bus.close()
        self.metrics.close()
        if self._untelemetry is not None:
            self._untelemetry()
        self.instance.release()
        log.info("Agent stopped")

    # -- recovery ---------------------------------------------------------------------------

    def _recover(self) -> list[Target]:
        """Converge interrupted rotations now (their locks are free: no process works on them),
        and name what to rotate again."""
        from kernel.rotation import lock_key, recover
        from kernel.rotation.recovery import resume_targets
        from kernel.swarm.recovery import (
            recover_swarm,
            resume_swarm_targets,
            unfinished_swarm_targets,
        )

        assert self._client is not None
        journal = self.runtime.journal
        stale = journal.stale()
        for entry in stale:
            log.warning(
                "recovery: rotation %s of %s has made no progress for 24 h: for operator review",
                entry.id,
                entry.target,
                extra={"trace_id": entry.trace_id, **log_context(entry.target, entry.lock_key)},
            )
        results = recover(self._client, journal, self.runtime.locks, lock_key=lock_key)
        # An update still rolling past 60 s is left to the scheduler (systemd's start timeout).
        results += recover_swarm(self._client, journal, self.runtime.locks, wait=60.0)
        if not results:
            log.info("recovery: no interrupted rotation")
        for result in results:
            level = 20 if result.ok else 40
            log.log(
                level,
                "recovery: %s: %s (%s)",
                result.target,
                result.action,
                result.reason,
                extra=log_context(result.target, None),
            )
            self.bus.publish(
                "recovery",
                target=result.target,
                action=result.action,
                ok=result.ok,
                reason=result.reason,
            )
        pending = journal.needing_resuming()
        now = round(time.time(), 6)
        for entry in pending:
            entry.resumed = {"at": now, "status": "scheduled by the agent"}
            journal.save(entry)
            log.info(
                "recovery: %s will be rotated again (%s)",
                entry.target,
                entry.cause,
                extra={"trace_id": entry.trace_id, **log_context(entry.target, entry.lock_key)},
            )
        journal.prune()
        swarm = {t.lock_key: t for t in resume_swarm_targets(pending)}
        swarm.update((t.lock_key, t) for t in unfinished_swarm_targets(journal))
        return [*resume_targets(pending), *swarm.values()]

    # -- what is managed --------------------------------------------------------------------

    @property
    def managed(self) -> list[Managed]:
        with self._managed_lock:
            return list(self._managed)

    def _set_managed(self, managed: list[Managed]) -> None:
        with self._managed_lock:
            self._managed = managed
        self.managed_file.write(managed)

    # -- sources ----------------------------------------------------------------------------

    def _sources_loop(self) -> None:
        interval = self.runtime.config.agent.watch.polling_interval
        next_poll = time.monotonic()
        while not self.stop_event.is_set():
            try:
                if self._rescan.is_set():
                    self._rescan.clear()
                    client = self._ensure_client()
                    self._set_managed(scan_managed(client, self.runtime.journal.owner))
                    # A container that died because its files vanished (tmpfs cleaned): back.
                    redeliver(self.runtime, client, self.managed)
                    self._scan_swarm(client)  # a service rotated: its update state and versions
                    self._watches.update(self.runtime, [*self.managed, *self._swarm])
                events = self._events
                if self._recheck_when_connected and events is not None and events.connected:
                    self._recheck_when_connected = False
                    self._check_all.set()
                hints = self._hints.take()
                if hints:
                    self._check("watch", only=hints)
                if self._watches.restarted(self.runtime):
                    # A change made while a provider was down reached no watch: look now.
                    self._check_all.set()
                if self._check_all.is_set() or time.monotonic() >= next_poll:
                    self._check_all.clear()
                    self._check("poll")
                    next_poll = time.monotonic() + interval * random.uniform(0.9, 1.1)  # noqa: S311
            except DSOError as exc:
                log.warning("check failed: %s", exc.message)
            except Exception:
                log.exception("check failed")
            self._wake.wait(min(HOUSEKEEPING, max(0.0, next_poll - time.monotonic())))
            self._wake.clear()

    def _scan_swarm(self, client: docker.DockerClient) -> None:
        scan = swarm_scan(client)
        self.swarm = scan
        self._swarm = scan.managed

    def _check(
        self, source: str, *, only: Mapping[str, Collection[str]] | None = None
    ) -> CheckResult:
        self._scan_swarm(self._ensure_client())  # a manager's Swarm services (or none)
        self._watches.update(self.runtime, [*self.managed, *self._swarm])
        result = self.checker.check([*self.managed, *self._swarm], only=only)
        self.runtime_file.event(source, f"{result.secrets} secrets, {len(result.lagging)} moved")
        self.bus.publish("check", source=source, secrets=result.secrets, moved=len(result.lagging))
        if result.lagging and self._events is not None and not self._events.connected:
            # Docker is away (or its event stream is not up yet): nothing can rotate now; check
            # everything again as soon as the stream is connected.
            log.debug(
                "%d targets moved while Docker is away: after it is back", len(result.lagging)
            )
            self._recheck_when_connected = True
            return result
        for key, (target, moved) in result.lagging.items():
            wanted = result.wanted.get(key, {})
            if self._deliveries.failed_before(key, wanted):
                log.debug(
                    "%s: not retried, its last rotation to these versions failed",
                    target.describe(),
                    extra={"target": key},
                )
                continue
            if not self._deliveries.claim(key, wanted):
                continue  # already queued or rotating to exactly these versions
            trace_id = new_trace_id()
            refs = ", ".join(sorted(moved))
            log.debug(
                "Secret rotation triggered: %s",
                refs,
                extra={"trace_id": trace_id, "target": key, **log_context(None, key)},
            )
            self.scheduler.submit(target, Reason(source, frozenset(moved), trace_id))
            self.bus.publish(
                "rotation_queued",
                target=target.lock_key,
                source=source,
                references=sorted(moved),
                trace_id=trace_id,
            )
        return result

    def check_now(self) -> None:
        """Check every managed secret now (the socket's ``sync``, a reconciliation)."""
        self._check_all.set()
        self._wake.set()

    def hint(self, provider: str, paths: Collection[str], source: str = "webhook") -> None:
        """Check these secrets now (a webhook, a ``watch`` notification): never a value."""
        self._hints.add(provider, paths)
        self.runtime_file.event(source, f"{provider}: {len(paths)} secrets")
        self._wake.set()

    def _start_webhook(self) -> None:
        """The optional inbound webhook: a hint to check named secrets, never a value."""
        settings = self.runtime.config.agent.webhook
        if not settings.enabled:
            return
        from kernel.agent.webhook import WebhookServer

        def on_hint(provider: str, secrets: tuple[str, ...], trace_id: str) -> None:
            log.info(
                "webhook: check %d secrets of %s",
                len(secrets),
                provider,
                extra={"trace_id": trace_id, "provider": provider},
            )
            self.hint(provider, secrets, source="webhook")

        def on_request(outcome: str, reason: str | None) -> None:
            self.bus.publish("webhook", outcome=outcome, reason=reason)

        self._webhook = WebhookServer(settings, on_hint, on_request=on_request)
        self._webhook.start()
        host, port = self._webhook.address
        log.info("Webhook listening on %s:%d", host, port)

    def _on_telemetry(self, name: str, fields: dict[str, Any]) -> None:
        if name in _FORWARDED:
            self.bus.publish(name, **fields)

    # -- the socket API ---------------------------------------------------------------------

    def _start_api(self) -> None:
        from kernel.agent.api.server import ApiServer

        self._api = ApiServer.for_agent(self)
        self._api.start()
        log.info("Listening on %s", self._api.path)

    @property
    def api_path(self) -> Any:
        return None if self._api is None else self._api.path

    def health(self) -> list[str]:
        """What keeps the agent from being live (empty: live): the Docker connection, the event
        watcher, the scheduler and the change checks."""
        problems = []
        if self.stop_event.is_set():
            problems.append("the agent is stopping")
        if self.use_events:
            events = self._events
            if events is None or not events.alive:
                problems.append("the Docker event watcher is not running")
            elif not events.connected:
                problems.append("the Docker daemon is not reachable (event stream reconnecting)")
        if not self.scheduler.alive:
            problems.append("the rotation scheduler is not running")
        if self._sources is None or not self._sources.is_alive():
            problems.append("the change checks are not running")
        return problems

    # -- Docker events ----------------------------------------------------------------------

    def _start_events(self) -> None:
        from kernel.agent.docker_events import DockerEvents

        self._events = DockerEvents(self.connect, self._on_docker_event, self._on_reconnect)
        self._events.start()

    def _on_docker_event(self, event: Any) -> None:
        self.runtime_file.event("docker", f"{event.type} {event.action}")
        self.bus.publish(
            "docker", object=event.type, action=event.action, name=event.name or event.id[:12]
        )
        if event.type != "container":
            log.debug("docker: %s %s %s", event.type, event.action, event.name or event.id[:12])
            return
        if event.action in _RESCAN_ACTIONS and (REFS_LABEL in (event.labels or {})):
            self._rescan.set()
            self._wake.set()

    def _on_reconnect(self) -> None:
        """Back from a lost daemon: scan and check everything again (nothing is lost)."""
        log.info("Docker socket connected")
        self.bus.publish("docker_connected")
        self._rescan.set()
        self._check_all.set()
        self._wake.set()

    def _ensure_client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = self.connect()
        return self._client

    # -- rotating ---------------------------------------------------------------------------

    def _rotate(self, target: Target, reasons: list[Reason]) -> None:
        """Run on the scheduler's pool: one target, through the same Batch as `rotate`."""
        refs = sorted({r for reason in reasons for r in reason.references})
        # An operator's request names the rotation it asked for (its 202 gave that trace id),
        # even when it joined a target already waiting for a change the agent noticed.
        ordered = sorted(reasons, key=lambda r: r.source != "api")
        trace_id = next((r.trace_id for r in ordered if r.trace_id), "") or new_trace_id()
        trigger = next((r.source for r in reasons if r.source in _TRIGGERS), "watch")
        self.bus.publish(
            "rotation_started", target=target.lock_key, trigger=trigger, trace_id=trace_id
        )
        started = time.monotonic()
        batch = self.runtime.batch(
            connect=self.connect,
            trigger=trigger,
            trace_id=trace_id,
            stop=self.stop_event,
            wait=self.runtime.config.agent.rotation.timeout,
            force=any(r.force for r in reasons),
        )
        try:
            if is_swarm_target(target):  # a Swarm service: the engine's update (docs/swarm.md)
                result = rotate_swarm(
                    self.runtime,
                    self.connect,
                    target,
                    trigger=trigger,
                    trace_id=trace_id,
                    stop=self.stop_event,
                    force=any(r.force for r in reasons),
                )
            else:
                result = batch.one(target)
        except BaseException:
            self._deliveries.abandon(target.lock_key)  # the next check tries again
            raise
        self._report(target, refs, trace_id, result, time.monotonic() - started)
        self._rescan.set()  # the rotated containers carry new labels
        self._wake.set()

    def _report(
        self,
        target: Target,
        refs: list[str],
        trace_id: str,
        result: TargetResult,
        seconds: float,
    ) -> None:
        rotated = [o for o in result.outcomes if o.status == "completed"]
        moved = {r.reference for o in rotated if o.plan for r in o.plan.changes.references}
        what = ", ".join(sorted(moved) or refs) or target.describe()
        names = [o.target for o in result.outcomes]
        extra = {
            "trace_id": trace_id,
            "target": target.lock_key,
            **log_context(names[0] if len(names) == 1 else None, target.lock_key),
        }
        if result.ok:
            if rotated:
                log.info("Rotation complete: %s", what, extra=extra)
            else:
                log.debug("%s: up to date", target.describe(), extra=extra)
        else:
            errors = [o.error for o in result.outcomes if o.error and o.status != "skipped"]
            reason = errors[0] if errors else str(result.error)
            log.error("Rotation failed: %s", reason, extra={**extra, "secrets": what})
        self._deliveries.settle(target.lock_key, result, self.runtime.journal)
        summary = {
            "target": target.lock_key,
            "status": result.status,
            "trace_id": trace_id,
            "containers": names,
        }
        self.runtime_file.rotation(summary)
        strategies = sorted({o.plan.strategy.value for o in result.outcomes if o.plan})
        self.bus.publish(
            "rotation",
            **summary,
            strategy=",".join(strategies) or None,
            seconds=round(seconds, 3),
            outcomes={o.target: o.status for o in result.outcomes},
        )


def _pid() -> int:
    return os.getpid()

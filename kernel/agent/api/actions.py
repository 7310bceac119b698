"""What the socket answers: one table of actions, shared by both dialects (docs/agent-api.md).

A dialect turns bytes into a :class:`Request` (an action name and its parameters) and an
:class:`Answer` back into bytes; everything between is here, so HTTP and JSON lines cannot
drift apart. Reading actions are open to every allowed caller; the mutating ones (``rotate``,
``sync``, ``reload``) are audited with the caller (a log line and the audit log).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel import __version__
from kernel.agent.scheduler import Reason
from kernel.errors import DSOError
from kernel.extensions.events import new_trace_id
from kernel.log import get_logger
from kernel.reference import parse_reference
from kernel.rotation.targets import log_context

if TYPE_CHECKING:
    from kernel.agent.api.peers import Peer
    from kernel.agent.bus import Stream
    from kernel.agent.daemon import Agent
    from kernel.rotation.targets import Target

log = get_logger("agent.api")


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    params: dict[str, Any]
    peer: Peer
    #: ``http`` or ``lines``.
    dialect: str
    #: False for HTTP GET/HEAD: a mutating action needs a POST.
    may_mutate: bool = True


@dataclass(slots=True)
class Answer:
    """A JSON document (``body``) or a text (``text``, e.g. the metrics), with a status code."""

    status: int = 200
    body: Any = None
    text: str | None = None
    content_type: str = "application/json"
    #: Set for ``events``: the dialect forwards the stream until the client goes away.
    stream: Stream | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, message: str, **extra: Any) -> Answer:
        return cls(status, {"error": message, "status": status, **extra})


Handler = Callable[["Actions", Request], Answer]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    handler: Handler
    mutating: bool
    summary: str


class Actions:
    """The action table bound to one agent."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def handle(self, request: Request) -> Answer:
        action = ACTIONS.get(request.action)
        if action is None:
            known = ", ".join(sorted(ACTIONS))
            return Answer.error(404, f"unknown action {request.action!r}; known: {known}")
        if action.mutating and not request.may_mutate:
            return Answer.error(405, f"{action.name} changes things: send it as POST", allow="POST")
        try:
            answer = action.handler(self, request)
        except _BadRequest as exc:
            answer = Answer.error(404 if isinstance(exc, _NotFound) else 400, exc.message)
        except DSOError as exc:
            answer = Answer.error(500, exc.message)
        except Exception:
            log.exception("socket action %s failed", request.action)
            answer = Answer.error(500, f"{request.action} failed inside the agent (see its log)")
        if action.mutating:
            self._audit(request, answer)
        self.agent.bus.publish(
            "request",
            action=action.name,
            dialect=request.dialect,
            uid=request.peer.uid,
            pid=request.peer.pid,
            mutating=action.mutating,
            status=answer.status,
        )
        return answer

    def _audit(self, request: Request, answer: Answer) -> None:
        """A mutating request, with its caller and what came of it (the trace id of the
        rotation it queued), in the log and the audit log."""
        peer = request.peer
        params = {k: v for k, v in request.params.items() if isinstance(v, str | int | bool)}
        body = answer.body if isinstance(answer.body, dict) else {}
        outcome = "accepted" if answer.status < 400 else "refused"
        trace_id = body.get("trace_id")
        log.info(
            "socket: %s requested by %s (uid %d, pid %d): %s",
            request.action,
            peer.user,
            peer.uid,
            peer.pid,
            outcome,
            extra={"action": request.action, "params": params, "trace_id": trace_id},
        )
        audit = self.agent.runtime.audit_log()
        if audit is None:
            return
        try:
            audit.append_request(
                request.action,
                caller=peer.to_dict(),
                params=params,
                outcome=outcome,
                trace_id=trace_id if isinstance(trace_id, str) else None,
            )
        except DSOError as exc:
            log.warning("socket: the audit line could not be written: %s", exc.message)

    # -- reading ----------------------------------------------------------------------------

    def health(self, request: Request) -> Answer:
        agent = self.agent
        problems = agent.health()
        body = {
            "live": not problems,
            "status": "ok" if not problems else "unavailable",
            "problems": problems,
            "version": __version__,
            "pid": _pid(),
            "uptime_seconds": round(time.time() - agent.started_at, 3),
        }
        return Answer(200 if not problems else 503, body)

    def status(self, request: Request) -> Answer:
        from kernel.agent.status_doc import live_status

        return Answer(200, live_status(self.agent))

    def rotations(self, request: Request) -> Answer:
        from kernel.agent.status_doc import rotations_doc

        params = request.params
        limit = _int(params.get("limit"), "limit", default=50, low=1, high=10_000)
        since = _float(params.get("since"), "since")
        docs = rotations_doc(
            self.agent.runtime.journal,
            status=_text(params.get("status"), "status"),
            target=_text(params.get("target"), "target"),
            trace_id=_text(params.get("trace_id"), "trace_id"),
            since=since,
            limit=limit,
        )
        return Answer(200, {"rotations": docs})

    def containers(self, request: Request) -> Answer:
        from kernel.agent.status_doc import containers_doc

        return Answer(200, {"containers": containers_doc(self.agent)})

    def providers(self, request: Request) -> Answer:
        from kernel.agent.status_doc import providers_doc

        return Answer(200, {"providers": providers_doc(self.agent)})

    def metrics(self, request: Request) -> Answer:
        from kernel.agent.metrics import CONTENT_TYPE

        text = self.agent.metrics.render().decode()
        return Answer(200, {"content_type": CONTENT_TYPE, "text": text}, text, CONTENT_TYPE)

    def events(self, request: Request) -> Answer:
        raw = request.params.get("types") or request.params.get("type")
        if isinstance(raw, str):
            raw = [t for t in raw.split(",") if t]
        if raw is not None and not (isinstance(raw, list) and all(isinstance(t, str) for t in raw)):
            raise _BadRequest("types: expected a list of event types")
        history = _bool(request.params.get("history"), "history")
        stream = self.agent.bus.stream(frozenset(raw) if raw else None, history=history)
        return Answer(200, {"stream": True}, stream=stream, content_type="text/event-stream")

    # -- changing ---------------------------------------------------------------------------

    def rotate(self, request: Request) -> Answer:
        params = request.params
        force = _bool(params.get("force"), "force")
        targets = self._targets(params)
        trace_id = new_trace_id()
        for target in targets:
            reason = Reason("api", trace_id=trace_id, force=force)
            self.agent.scheduler.submit(target, reason, now=True)
        only = log_context(None, targets[0].lock_key) if len(targets) == 1 else {}
        log.info(
            "socket: rotation of %s queued",
            ", ".join(t.describe() for t in targets),
            extra={"trace_id": trace_id, **only},
        )
        return Answer(
            202,
            {
                "accepted": True,
                "trace_id": trace_id,
                "force": force,
                "targets": [t.to_dict() | {"lock": t.lock_key} for t in targets],
            },
        )

    def sync(self, request: Request) -> Answer:
        self.agent.check_now()
        return Answer(202, {"accepted": True, "detail": "every provider is checked now"})

    def reload(self, request: Request) -> Answer:
        self.agent.request_reload()
        return Answer(202, {"accepted": True, "detail": "the configuration is read again"})

    def _targets(self, params: dict[str, Any]) -> list[Target]:
        from kernel.rotation.targets import Target, service_lock_key

        service = _text(params.get("service"), "service")
        container = _text(params.get("container"), "container")
        secret = _text(params.get("secret"), "secret")
        project = _text(params.get("project"), "project")
        if sum(x is not None for x in (service, container, secret)) != 1:
            raise _BadRequest("rotate needs exactly one of service, container or secret")
        managed = self.agent.managed
        found: dict[str, Target] = {}
        if service is not None:
            for m in managed:
                t = m.target
                if t.service == service and project in (None, t.project):
                    assert t.project is not None
                    found[t.lock_key] = Target(
                        service, service_lock_key(t.project, service), t.project, service
                    )
            if len({t.project for t in found.values()}) > 1:
                projects = ", ".join(sorted(str(t.project) for t in found.values()))
                raise _BadRequest(
                    f"service {service!r} is in several projects ({projects}): add project"
                )
        elif container is not None:
            for m in managed:
                if container in (m.name, m.id) or (
                    len(container) >= 12 and m.id.startswith(container)
                ):
                    t = m.target
                    found[t.lock_key] = Target(m.name, t.lock_key, t.project, t.service, (m.name,))
        else:
            assert secret is not None
            wanted = _secret_path(secret)
            for m in managed:
                if any(_secret_path(text) == wanted for text in m.references.values()):
                    found[m.target.lock_key] = m.target
        if not found:
            what = service or container or secret
            raise _NotFound(
                f"no managed container matches {what!r} (`docker dso status` lists them)"
            )
        return list(found.values())


class _BadRequest(DSOError):
    """A request the caller must fix (answered 400)."""


class _NotFound(_BadRequest):
    pass


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("health", Actions.health, False, "live or not, and why"),
        Action("status", Actions.status, False, "everything the agent knows (status --json)"),
        Action("rotations", Actions.rotations, False, "rotation history, with filters"),
        Action("containers", Actions.containers, False, "the managed containers"),
        Action("providers", Actions.providers, False, "providers, breakers and latency"),
        Action("metrics", Actions.metrics, False, "Prometheus text exposition"),
        Action("events", Actions.events, False, "the agent's event stream"),
        Action("rotate", Actions.rotate, True, "rotate a service, container or secret now"),
        Action("sync", Actions.sync, True, "check every provider now"),
        Action("reload", Actions.reload, True, "read the configuration again (SIGHUP)"),
    )
}


def _secret_path(text: str) -> str:
    try:
        ref = parse_reference(text)
    except DSOError:
        return text.strip().strip("/")
    return ref.path


def _text(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 512:
        raise _BadRequest(f"{name}: expected a string")
    return value


def _bool(value: Any, name: str) -> bool:
    if value in (None, False, "", "0", "false", "no"):
        return False
    if value in (True, "1", "true", "yes"):
        return True
    raise _BadRequest(f"{name}: expected true or false")


def _int(value: Any, name: str, *, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _BadRequest(f"{name}: expected an integer") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise _BadRequest(f"{name}: expected an integer from {low} to {high}")
    return number


def _float(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _BadRequest(f"{name}: expected Unix seconds") from None
    if isinstance(value, bool) or number != number:
        raise _BadRequest(f"{name}: expected Unix seconds")
    return number


def _pid() -> int:
    import os

    return os.getpid()

"""Rotation states and steps, and the tables that say which moves are legal.

A rotation has a :class:`RotationStatus` (the spec's statuses, kept in ``rotations.json``) and,
while it runs, a :class:`Step`: the step about to be taken, journaled *before* it is taken. Each
strategy walks its own sequence of steps (:data:`SEQUENCES`); any step after the plan may turn
into :attr:`Step.ROLLBACK`. Both tables are tested exhaustively
(tests/unit/test_rotation_states.py), as supervisor tests its process state table.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType


class RotationStatus(StrEnum):
    """Where a rotation stands (spec: "State Persistence", "Enhanced State Tracking")."""

    #: Running, or its process died mid-way: ``recover`` finds these.
    IN_PROGRESS = "in_progress"
    #: The new container serves under the canonical name; the old one is gone.
    COMPLETED = "completed"
    #: A step failed; the old container serves as before and the new one was removed.
    ROLLED_BACK = "rolled_back"
    #: A step failed and the state was left for an operator (``rollback_on_failure: false``,
    #: or the old container could not be removed after the swap); ``recover`` converges it.
    FAILED = "failed"
    #: Was interrupted (crash, kill) or failed; ``recover`` converged it to one serving container.
    RECOVERED = "recovered"
    #: ``recover`` could not converge it safely; an operator must look (the reason is recorded).
    CRITICAL_ERROR = "critical_error"


#: Statuses a rotation can move to from each status.
STATUS_TRANSITIONS: MappingProxyType[RotationStatus, frozenset[RotationStatus]] = MappingProxyType(
    {
        RotationStatus.IN_PROGRESS: frozenset(
            {
                RotationStatus.COMPLETED,
                RotationStatus.ROLLED_BACK,
                RotationStatus.FAILED,
                RotationStatus.RECOVERED,
                RotationStatus.CRITICAL_ERROR,
            }
        ),
        RotationStatus.FAILED: frozenset({RotationStatus.RECOVERED, RotationStatus.CRITICAL_ERROR}),
        RotationStatus.CRITICAL_ERROR: frozenset({RotationStatus.RECOVERED}),
        RotationStatus.COMPLETED: frozenset(),
        RotationStatus.ROLLED_BACK: frozenset(),
        RotationStatus.RECOVERED: frozenset(),
    }
)

#: Finished for good: nothing left to do; subject to the 7-day retention.
TERMINAL: frozenset[RotationStatus] = frozenset(
    s for s, targets in STATUS_TRANSITIONS.items() if not targets
)
#: Statuses ``recover`` acts on.
NEEDS_RECOVERY: frozenset[RotationStatus] = frozenset(
    {RotationStatus.IN_PROGRESS, RotationStatus.FAILED, RotationStatus.CRITICAL_ERROR}
)


def can_move(current: RotationStatus, target: RotationStatus) -> bool:
    """True if ``current → target`` is a legal status change."""
    return target in STATUS_TRANSITIONS[current]


class Strategy(StrEnum):
    """How a container is rotated (docs/rotation.md)."""

    #: Blue-green: the new container overlaps the old one on the same networks and aliases.
    ROLLING = "rolling"
    #: Stop the old container, then start the new one: for containers that cannot run twice.
    RESTART = "restart"
    #: Rewrite the secret files in place and signal the container; no new container.
    RELOAD = "reload"
    #: Record the change, touch nothing.
    NONE = "none"
    #: A Swarm service: a new versioned engine secret, one service update swapping it in, the
    #: engine's rolling update (kernel.swarm.rotation; docs/swarm.md). Not a container choice.
    SWARM = "swarm"


#: The strategies a container may be rotated with (``--strategy``, ``dso.strategy``, config).
CONTAINER_STRATEGIES = tuple(s for s in Strategy if s is not Strategy.SWARM)


class Step(StrEnum):
    """A journaled step: written to the journal before it is taken."""

    #: The entry exists; nothing has been touched yet.
    PLAN = "plan"
    #: Create ``<name>_dso_new_<id>``, a full clone with the new values, not started.
    CREATE_NEW = "create_new"
    #: Publish the new secret files on the host tmpfs (atomic ``..data`` swap).
    DELIVER_FILES = "deliver_files"
    #: Start the new container (rolling: alongside the old one).
    START_NEW = "start_new"
    #: Wait for the new (reload: the same) container to pass its health check.
    HEALTH_GATE = "health_gate"
    #: ``rolling``: give the new (healthy) container the old one's network aliases; until now it
    #: ran without them, so Docker's DNS never handed it a client before it was ready.
    ATTACH_ALIASES = "attach_aliases"
    #: Rename the old container to ``<name>_dso_backup_<id>``.
    RENAME_OLD = "rename_old"
    #: Rename the new container to ``<name>``.
    RENAME_NEW = "rename_new"
    #: Give the new container the old one's restart policy (it ran with ``no`` until now, so a
    #: daemon restart could not bring back a copy that never held the name).
    RESTART_POLICY = "restart_policy"
    #: Disconnect the old container from its networks, so Docker's DNS stops returning it.
    DISCONNECT_OLD = "disconnect_old"
    #: Stop the old container with its own stop signal and grace period.
    STOP_OLD = "stop_old"
    #: Remove the old container.
    REMOVE_OLD = "remove_old"
    #: ``reload``: send the configured signal to the container.
    SIGNAL = "signal"
    #: ``swarm``: create the new versioned Swarm secret (idempotent: named by its fingerprint).
    CREATE_SECRET = "create_secret"  # noqa: S105 (a step name)
    #: ``swarm``: one service update swapping the old secret versions for the new ones.
    UPDATE_SERVICE = "update_service"
    #: ``swarm``: wait for the engine's rolling update to finish (completed, rolled back, paused).
    CONVERGE = "converge"
    #: ``swarm``: remove the secret versions no service or running task uses any more.
    REMOVE_SECRETS = "remove_secrets"
    #: Undo what was done: remove the new container, restore names and files, restart the old.
    ROLLBACK = "rollback"


#: The steps of each strategy, in order.
SEQUENCES: MappingProxyType[Strategy, tuple[Step, ...]] = MappingProxyType(
    {
        Strategy.ROLLING: (
            Step.PLAN,
            Step.CREATE_NEW,
            Step.DELIVER_FILES,
            Step.START_NEW,
            Step.HEALTH_GATE,
            Step.ATTACH_ALIASES,
            Step.RENAME_OLD,
            Step.RENAME_NEW,
            Step.RESTART_POLICY,
            Step.DISCONNECT_OLD,
            Step.STOP_OLD,
            Step.REMOVE_OLD,
        ),
        Strategy.RESTART: (
            Step.PLAN,
            Step.CREATE_NEW,
            Step.DELIVER_FILES,
            Step.STOP_OLD,
            Step.START_NEW,
            Step.HEALTH_GATE,
            Step.RENAME_OLD,
            Step.RENAME_NEW,
            Step.RESTART_POLICY,
            Step.REMOVE_OLD,
        ),
        Strategy.RELOAD: (Step.PLAN, Step.DELIVER_FILES, Step.SIGNAL, Step.HEALTH_GATE),
        Strategy.NONE: (Step.PLAN,),
        Strategy.SWARM: (
            Step.PLAN,
            Step.CREATE_SECRET,
            Step.UPDATE_SERVICE,
            Step.CONVERGE,
            Step.REMOVE_SECRETS,
        ),
    }
)


def next_steps(strategy: Strategy, current: Step) -> frozenset[Step]:
    """The steps that may follow ``current`` in ``strategy``.

    The successor in the sequence; and :attr:`Step.ROLLBACK` from any step after the plan up to
    the renames (after the new container holds the name, a failure is cleaned up forwards, never
    rolled back: the new container is the one serving). Nothing follows a rollback.
    """
    sequence = SEQUENCES[strategy]
    if current not in sequence:
        return frozenset()
    index = sequence.index(current)
    allowed = set(sequence[index + 1 : index + 2])
    if current in _ROLLBACKABLE[strategy]:
        allowed.add(Step.ROLLBACK)
    return frozenset(allowed)


def _rollbackable(strategy: Strategy) -> frozenset[Step]:
    sequence = SEQUENCES[strategy]
    if Step.CONVERGE in sequence:  # swarm: the engine's rollback, seen while converging
        return frozenset(sequence[1 : sequence.index(Step.CONVERGE) + 1])
    last = sequence.index(Step.RENAME_NEW) if Step.RENAME_NEW in sequence else len(sequence) - 1
    return frozenset(sequence[1 : last + 1])


_ROLLBACKABLE = MappingProxyType({s: _rollbackable(s) for s in Strategy})


def can_step(strategy: Strategy, current: Step, target: Step) -> bool:
    """True if ``current → target`` is a legal step change in ``strategy``."""
    return target in next_steps(strategy, current)


def health_confirmed(strategy: Strategy, step: Step) -> bool:
    """True once the journal shows a step after the health gate: the new container passed.

    Recovery may then finish a swap forwards instead of undoing it.
    """
    sequence = SEQUENCES[strategy]
    if step not in sequence or Step.HEALTH_GATE not in sequence:
        return False
    return sequence.index(step) > sequence.index(Step.HEALTH_GATE)

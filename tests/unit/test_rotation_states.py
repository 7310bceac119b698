"""The rotation status and step tables, exhaustively (STYLE.md: supervisor's transition table)."""

from __future__ import annotations

import itertools

import pytest

from kernel.rotation.states import (
    NEEDS_RECOVERY,
    SEQUENCES,
    STATUS_TRANSITIONS,
    TERMINAL,
    RotationStatus,
    Step,
    Strategy,
    can_move,
    can_step,
    health_confirmed,
)

S = RotationStatus
EXPECTED_STATUS_MOVES = {
    (S.IN_PROGRESS, S.COMPLETED),
    (S.IN_PROGRESS, S.ROLLED_BACK),
    (S.IN_PROGRESS, S.FAILED),
    (S.IN_PROGRESS, S.RECOVERED),
    (S.IN_PROGRESS, S.CRITICAL_ERROR),
    (S.FAILED, S.RECOVERED),
    (S.FAILED, S.CRITICAL_ERROR),
    (S.CRITICAL_ERROR, S.RECOVERED),
}


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product(S, S)), ids=lambda s: s.value
)
def test_every_status_pair(current: RotationStatus, target: RotationStatus) -> None:
    assert can_move(current, target) == ((current, target) in EXPECTED_STATUS_MOVES)


def test_status_values_are_the_specs() -> None:
    assert {s.value for s in S} == {
        "in_progress",
        "completed",
        "rolled_back",
        "failed",
        "recovered",
        "critical_error",
    }
    assert set(STATUS_TRANSITIONS) == set(S)


def test_named_groups() -> None:
    assert {S.COMPLETED, S.ROLLED_BACK, S.RECOVERED} == TERMINAL
    assert {S.IN_PROGRESS, S.FAILED, S.CRITICAL_ERROR} == NEEDS_RECOVERY
    assert not TERMINAL & NEEDS_RECOVERY
    assert set(S) == TERMINAL | NEEDS_RECOVERY


ROLLING = [
    "plan",
    "create_new",
    "deliver_files",
    "start_new",
    "health_gate",
    "attach_aliases",
    "rename_old",
    "rename_new",
    "restart_policy",
    "disconnect_old",
    "stop_old",
    "remove_old",
]
RESTART = [
    "plan",
    "create_new",
    "deliver_files",
    "stop_old",
    "start_new",
    "health_gate",
    "rename_old",
    "rename_new",
    "restart_policy",
    "remove_old",
]
RELOAD = ["plan", "deliver_files", "signal", "health_gate"]
SWARM = ["plan", "create_secret", "update_service", "converge", "remove_secrets"]
ORDER = {
    "rolling": ROLLING,
    "restart": RESTART,
    "reload": RELOAD,
    "none": ["plan"],
    "swarm": SWARM,
}
#: The last step from which a failure is rolled back (later ones are finished forwards).
LAST_ROLLBACK = {
    "rolling": "rename_new",
    "restart": "rename_new",
    "reload": "health_gate",
    "swarm": "converge",
}


def expected_step_moves(strategy: str) -> set[tuple[str, str]]:
    order = ORDER[strategy]
    moves = set(itertools.pairwise(order))
    if strategy in LAST_ROLLBACK:
        last = order.index(LAST_ROLLBACK[strategy])
        moves |= {(step, "rollback") for step in order[1 : last + 1]}
    return moves


@pytest.mark.parametrize("strategy", list(Strategy), ids=lambda s: s.value)
def test_every_step_pair(strategy: Strategy) -> None:
    assert [s.value for s in SEQUENCES[strategy]] == ORDER[strategy.value]
    expected = expected_step_moves(strategy.value)
    for current, target in itertools.product(Step, Step):
        assert can_step(strategy, current, target) == ((current.value, target.value) in expected), (
            current,
            target,
        )


@pytest.mark.parametrize("strategy", [Strategy.ROLLING, Strategy.RESTART], ids=str)
def test_health_is_confirmed_only_after_the_gate(strategy: Strategy) -> None:
    order = ORDER[strategy.value]
    gate = order.index("health_gate")
    for index, step in enumerate(order):
        assert health_confirmed(strategy, Step(step)) == (index > gate)
    assert not health_confirmed(strategy, Step.ROLLBACK)

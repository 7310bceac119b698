"""Every doctor check, in the order ``docker dso doctor`` reports them.

The ids are stable: scripts filter on them and docs/doctor.md explains each one (a unit test
fails when one is missing there).
"""

from __future__ import annotations

from kernel.doctor import (
    agent_socket,
    configuration,
    daemon,
    directories,
    leftovers,
    programs,
    service_unit,
    state_files,
    storage,
    swarm,
)
from kernel.doctor.model import Check

CHECKS: tuple[Check, ...] = (
    *daemon.CHECKS,
    *configuration.CHECKS,
    *directories.CHECKS,
    *agent_socket.CHECKS,
    *service_unit.CHECKS,
    *programs.CHECKS,
    *storage.CHECKS,
    *state_files.CHECKS,
    *leftovers.CHECKS,
    *swarm.CHECKS,
)

CHECK_IDS: tuple[str, ...] = tuple(check.id for check in CHECKS)

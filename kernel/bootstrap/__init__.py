"""``docker dso bootstrap agent|local``: set up the host agent (or a user's ``~/.dso``) as one
transaction that can be planned, repeated and undone.

    plan = plan_agent(AgentRequest(), Host())    # compares the wanted state with what is there
    outcome = dry_run(plan)                       # --dry-run: the steps, nothing changed
    outcome = apply_plan(plan, Host())            # applies, verifies; undoes all on a failure
    outcome.ok, outcome.to_dict()                 # the --json document

Modules: ``host`` (root, group ``dso``, systemd: the real machine or a ``--root`` tree),
``config_text`` (the generated dso.yaml, checked by the configuration's validator),
``steps`` (one change each, with its undo), ``plan`` (what is wanted), ``planner`` (the
comparison with what is there, and the :class:`Plan`), ``transaction``
(apply, verify, roll back), ``verify`` (the final checks, the doctor's among them).
docs/bootstrap.md describes every step and the owners and modes it sets.
"""

from __future__ import annotations

from kernel.bootstrap.config_text import (
    PROVIDER_SETTINGS,
    PROVIDER_TYPES,
    ProviderChoice,
    Setting,
    choose_providers,
    render_config,
)
from kernel.bootstrap.host import GROUP, Host, PrefixHost
from kernel.bootstrap.plan import AgentRequest, LocalRequest, plan_agent, plan_local
from kernel.bootstrap.planner import Plan
from kernel.bootstrap.transaction import Outcome, StepStatus, apply_plan, dry_run
from kernel.bootstrap.verify import Verified

__all__ = [
    "GROUP",
    "PROVIDER_SETTINGS",
    "PROVIDER_TYPES",
    "AgentRequest",
    "Host",
    "LocalRequest",
    "Outcome",
    "Plan",
    "PrefixHost",
    "ProviderChoice",
    "Setting",
    "StepStatus",
    "Verified",
    "apply_plan",
    "choose_providers",
    "dry_run",
    "plan_agent",
    "plan_local",
    "render_config",
]

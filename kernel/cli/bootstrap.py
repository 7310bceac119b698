"""``docker dso bootstrap agent|local``: set up the host agent, or a user's ``~/.dso``, as one
transaction (the work: :mod:`kernel.bootstrap`; this module chooses, prompts and prints)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kernel.cli.app import Application, pass_app
from kernel.errors import StorageError, UsageError

if TYPE_CHECKING:
    from kernel.bootstrap import Outcome, Plan, ProviderChoice

F = TypeVar("F", bound=Callable[..., Any])

#: Setting option → click parameter name.
_SETTING_PARAMS = {
    "--vault-addr": "vault_addr",
    "--vault-token-file": "vault_token_file",
    "--aws-region": "aws_region",
    "--azure-vault-url": "azure_vault_url",
}
_MARK = {"ok": "ok", "warn": "warn", "fail": "FAIL"}


@click.group("bootstrap")
def bootstrap() -> None:
    """Set up dso on this host: the systemd agent (as root), or ~/.dso for a user.

    Both compare what should be there with what is, print the steps that close the gap, apply
    them as one transaction (a failure undoes every step already done) and verify the result.
    A second run changes nothing and says so. What each step does: docs/bootstrap.md.

    \b
    Examples:
      sudo docker dso bootstrap agent --dry-run
      sudo docker dso bootstrap agent
      docker dso bootstrap local
    """


def _provider_options(func: F) -> F:
    options = [
        click.option(
            "--provider",
            "providers",
            multiple=True,
            type=click.Choice(["local", "vault", "aws", "azure"]),
            help="A provider to configure (repeatable; default: local). In a terminal, without "
            "it, you are asked.",
        ),
        click.option(
            "--default-provider",
            metavar="NAME",
            help="The provider of references that name none (default: the first --provider).",
        ),
        click.option("--vault-addr", metavar="URL", help="vault provider: the server's address."),
        click.option(
            "--vault-token-file",
            metavar="PATH",
            help="vault provider: a file holding the token (default: VAULT_TOKEN in the agent's "
            "environment).",
        ),
        click.option("--aws-region", metavar="REGION", help="aws provider: the region."),
        click.option(
            "--azure-vault-url",
            metavar="URL",
            help="azure provider: the Key Vault URL (https://NAME.vault.azure.net).",
        ),
        click.option(
            "--force-config",
            is_flag=True,
            help="Regenerate an existing configuration (a timestamped .bak copy is kept). "
            "Without it an existing file is validated and kept.",
        ),
        click.option("--dry-run", is_flag=True, help="Print the plan; change nothing."),
        click.option(
            "-y",
            "--yes",
            is_flag=True,
            help="Ask nothing, even in a terminal: take the defaults and the options given.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the plan and outcome as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@bootstrap.command("agent")
@_provider_options
@click.option(
    "--executable",
    default="/usr/local/bin/dso",
    show_default=True,
    help="The dso program the systemd unit runs.",
)
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Lay the files out under this directory instead of / (packaging, tests): no group is "
    "added, systemd is not reloaded, and as a user other than root the files keep that user's "
    "owner.",
)
@pass_app
def agent(app: Application, /, root: Path | None, executable: str, **options: Any) -> None:
    """Set up the host agent: directories, /etc/dso/dso.yaml, the local vault, group dso and
    the systemd unit dso-agent.service, with their owners and modes (as root).

    Creates /etc/dso, /var/lib/dso (state, cache, locks, plugins, snapshots), /var/log/dso and
    /run/dso; writes dso.yaml (root:dso 0640) for the providers chosen unless one exists (an
    existing one is validated and kept; --force-config regenerates it with a backup); creates
    the vault key and an empty vault; adds group dso (its members may use the agent's socket
    and read the configuration); writes the unit and reloads systemd. Without a terminal it
    asks nothing: the local provider, or the --provider options. It neither enables nor
    starts the service: `sudo docker dso system enable` does.

    \b
    Examples:
      sudo docker dso bootstrap agent --dry-run
      sudo docker dso bootstrap agent
      sudo docker dso bootstrap agent --provider vault --vault-addr https://vault:8200
      sudo docker dso bootstrap agent --provider local --provider aws --aws-region eu-west-1
      sudo docker dso bootstrap agent --force-config --provider local
      docker dso bootstrap agent --root ./pkgroot --executable /opt/dso/current/dso --json
    """
    from kernel.bootstrap import AgentRequest, Host, PrefixHost, plan_agent
    from kernel.bootstrap.plan import rooted
    from kernel.paths import agent_layout

    if root is None and os.geteuid() != 0 and not options["dry_run"]:
        raise UsageError(
            "bootstrap agent needs root: it writes /etc/dso, /var/lib/dso and the systemd unit, "
            "and adds group dso",
            hint="sudo docker dso bootstrap agent (--dry-run shows the plan without root)",
        )
    base = root.resolve() if root is not None else Path("/")
    host = PrefixHost() if root is not None else Host()
    config = rooted(agent_layout().config, base)
    choices, given = _choose(app, options, writes_config=not config.exists())
    request = AgentRequest(
        providers=choices,
        default_provider=options["default_provider"],
        executable=executable,
        force_config=options["force_config"],
        providers_given=given,
    )
    plan = plan_agent(request, host, root=base)
    _carry_out(app, plan, host, "bootstrap agent", options)


@bootstrap.command("local")
@_provider_options
@pass_app
def local(app: Application, /, **options: Any) -> None:
    """Set up ~/.dso (or $DSO_HOME) for you: directories (0700), config.yaml and the local
    vault, as `docker dso init` does; an existing installation is checked and kept.

    The vault is protected by a random key in vault.key (back it up), or by
    DSO_VAULT_PASSPHRASE when it is set. An existing vault, key or config.yaml is kept (the
    config is validated; --force-config regenerates it with a backup); modes that are too open
    are tightened.

    \b
    Examples:
      docker dso bootstrap local --dry-run
      docker dso bootstrap local
      DSO_HOME=/srv/dso docker dso bootstrap local --provider vault --vault-addr http://bao:8200
    """
    from kernel.bootstrap import Host, LocalRequest, plan_local
    from kernel.paths import local_layout

    # Always the user's home: app.layout is the host agent's on a bootstrapped host (DSO_MODE,
    # or /etc/dso/dso.yaml in use), whose directories `local` must never touch.
    layout = local_layout()
    choices, given = _choose(app, options, writes_config=not layout.config.exists())
    request = LocalRequest(
        providers=choices,
        default_provider=options["default_provider"],
        force_config=options["force_config"],
        providers_given=given,
    )
    plan = plan_local(request, layout)
    _carry_out(app, plan, Host(), "bootstrap local", options)


# -- choosing providers --------------------------------------------------------------------------


def _choose(
    app: Application, options: dict[str, Any], *, writes_config: bool
) -> tuple[tuple[ProviderChoice, ...], bool]:
    """The providers of the generated file, from the options, or asked in a terminal when none
    is given (never without one: a bootstrap in a script must not wait for input)."""
    from kernel.bootstrap import PROVIDER_SETTINGS, choose_providers

    types: list[str] = list(options["providers"])
    values = {flag: options[param] for flag, param in _SETTING_PARAMS.items()}
    ask = (
        not types
        and not options["yes"]
        and not options["dry_run"]
        and not options["as_json"]
        and (writes_config or options["force_config"])
        and app.stdin_is_tty
    )
    if ask:
        types = _ask_types()
        for kind in types:
            for setting in PROVIDER_SETTINGS[kind]:
                if not values.get(setting.option):
                    values[setting.option] = click.prompt(
                        f"{kind}: {setting.question}",
                        default="" if not setting.required else None,
                        show_default=False,
                    ).strip()
        if len(types) > 1 and not options["default_provider"]:
            options["default_provider"] = click.prompt(
                "Default provider", type=click.Choice(types), default=types[0]
            )
    return choose_providers(types, values), bool(types)


def _ask_types() -> list[str]:
    from kernel.bootstrap import PROVIDER_TYPES

    while True:
        answer = click.prompt(
            f"Providers to configure, comma-separated ({', '.join(PROVIDER_TYPES)})",
            default="local",
        )
        types = [t.strip() for t in answer.replace(" ", ",").split(",") if t.strip()]
        unknown = [t for t in types if t not in PROVIDER_TYPES]
        if types and not unknown:
            return list(dict.fromkeys(types))
        click.echo(f"unknown: {', '.join(unknown) or '(none given)'}", err=True)


# -- applying and printing -----------------------------------------------------------------------


def _carry_out(
    app: Application, plan: Plan, host: Any, command: str, options: dict[str, Any]
) -> None:
    from kernel.bootstrap import apply_plan, dry_run

    outcome = dry_run(plan) if options["dry_run"] else apply_plan(plan, host)
    if options["as_json"]:
        app.out_json(outcome.to_dict())
    else:
        _print(app, outcome, command)
    if not outcome.ok:
        from kernel.bootstrap import StepStatus

        if outcome.undo_errors:
            tail = "; could not undo everything: " + "; ".join(outcome.undo_errors)
        elif StepStatus.UNDONE in outcome.statuses:
            tail = "; the changes made before it were undone"
        else:
            tail = "; nothing was changed"
        raise StorageError(f"{command} failed: {outcome.error}{tail}", hint=outcome.hint)


def _print(app: Application, outcome: Outcome, command: str) -> None:
    plan = outcome.plan
    where = f" under {plan.root}" if plan.root != Path("/") else ""
    if outcome.dry_run:
        if plan.nothing_to_do:
            app.out(f"{command}{where}: nothing to do (dry run)")
        else:
            app.out(f"{command}{where}: {len(plan.steps)} steps (dry run: nothing is changed)")
            for number, step in enumerate(plan.steps, 1):
                app.out(f"  {number:>2}. {step.describe()}")
        _print_kept(app, plan)
        for note in plan.notes:
            app.out(f"note: {note}")
        return
    if plan.nothing_to_do and outcome.ok:
        app.out(
            f"{command}{where}: nothing to do: everything is in place ({len(plan.expected)} "
            "paths checked; --dry-run lists them)"
        )
    else:
        steps = zip(plan.steps, outcome.statuses, strict=True)
        for number, (step, status) in enumerate(steps, 1):
            mark = status.value.upper() if status.value == "failed" else status.value
            app.out(f"  {mark:<11} {number:>2}. {step.describe()}")
    for check in outcome.checks:
        app.out(f"  {_MARK.get(check.status, check.status):<4}  {check.id}: {check.summary}")
        if check.status != "ok" and check.fix:
            app.out(f"        fix: {check.fix}")
    for note in plan.notes:
        app.out(f"note: {note}")
    if outcome.ok:
        if not plan.nothing_to_do:
            app.out(f"{command}{where}: {len(plan.steps)} changes applied and verified")
        if plan.next:
            app.out(f"next: {plan.next}")


def _print_kept(app: Application, plan: Plan) -> None:
    if plan.kept:
        app.out("already in place:")
        for line in plan.kept:
            app.out(f"  {line}")

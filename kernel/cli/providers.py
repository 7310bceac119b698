"""``docker dso providers …``: list the provider programs dso can find, check one end to end.

``list`` shows what discovery found (plugins directory and source mode) with what each program
says about itself (``--describe``), and every rejected candidate with the reason. ``check``
starts one provider the way the agent would and reports each step with its timing. ``test``
(the conformance kit) lives in :mod:`kernel.cli.providers_test`, ``install``/``remove`` in
:mod:`kernel.cli.providers_install`, ``new`` (the template) in :mod:`kernel.cli.providers_new`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from kernel.cli.app import Application, pass_app
from kernel.cli.providers_install import install, remove
from kernel.cli.providers_new import new
from kernel.cli.providers_test import providers_test
from kernel.errors import DSOError, ExitCode

if TYPE_CHECKING:
    from kernel.config import Config
    from kernel.provider_host import Discovery, ProviderCommand


@click.group()
def providers() -> None:
    """Provider programs: the processes that fetch secrets from each back end.

    dso runs one provider process per configured provider: dso-provider-<name> from the
    plugins directory (~/.dso/plugins, /var/lib/dso/plugins for the agent, or
    $DSO_PLUGINS_DIR), verified against its SHA256SUMS, or dso's own providers from source.

    \b
    Examples:
      docker dso providers list
      docker dso providers list --json | jq '.rejected'
      docker dso providers check local
      docker dso providers check vault --json
      docker dso providers test ./dso-provider-mine
      docker dso providers install ./dso-provider-mine-1.0.tar.gz
      docker dso providers remove mine
      docker dso providers new mine          a provider project that starts green
    """


def _config(app: Application) -> Config | None:
    from kernel.config import load_config

    try:
        return load_config(app.config_path).config
    except DSOError as exc:
        app.warn(f"configuration not loaded ({exc.message}); showing programs only")
        return None


def _configured_as(config: Config | None, program: str) -> list[str]:
    if config is None:
        return []
    return sorted(name for name, p in config.providers.items() if p.type == program)


@providers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def list_(app: Application, as_json: bool) -> None:
    """List provider programs, and the candidates that were rejected and why.

    For each program: where it was found (plugins-dir or source), whether it matched
    SHA256SUMS, and what its --describe says (version, protocol, capabilities). A candidate
    is rejected for a bad name, missing execute permission, a missing or mismatching
    SHA256SUMS line, or a failing --describe. Set DSO_PLUGINS_UNVERIFIED=1 to accept
    programs when the directory has no SHA256SUMS at all (development only).

    \b
    Examples:
      docker dso providers list
      docker dso providers list --json | jq -r '.providers[].name'
      DSO_PLUGINS_DIR=./dist docker dso providers list
    """
    from kernel.provider_host import discover, plugins_dir, run_describe

    config = _config(app)
    discovery = discover(plugins_dir(app.layout), describe=run_describe)
    if as_json:
        doc = discovery.to_json()
        for item in doc["providers"]:
            item["configured_as"] = _configured_as(config, item["name"])
        app.out_json(doc)
        return
    _print_discovery(app, discovery, config)


def _verified(value: bool | None) -> str:
    return {True: "yes", False: "NO (unverified)", None: "built-in"}[value]


def _print_discovery(app: Application, discovery: Discovery, config: Config | None) -> None:
    manifest = "SHA256SUMS present" if discovery.manifest else "no SHA256SUMS"
    app.out(f"plugins directory: {discovery.plugins_dir} ({manifest})")
    if discovery.release_dir is not None:
        app.out(f"release providers: {discovery.release_dir} (origin release)")
    rows = [("NAME", "ORIGIN", "VERIFIED", "VERSION", "PROTOCOL", "CAPABILITIES", "CONFIGURED")]
    for found in discovery.found.values():
        doc = found.to_json()
        rows.append(
            (
                found.name,
                found.origin,
                _verified(found.verified),
                str(doc.get("version") or "-"),
                str(doc.get("protocol") or "-"),
                ",".join(doc.get("capabilities") or []) or "-",
                ",".join(_configured_as(config, found.name)) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        app.out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if len(rows) == 1:
        app.out("(no provider programs found)")
    if discovery.rejected:
        app.out("")
        app.out("rejected:")
        for rejected in discovery.rejected:
            app.out(f"  {rejected.path}: {rejected.reason}")
    if discovery.manifest is not None:
        for problem in discovery.manifest.problems:
            app.warn(f"{discovery.manifest.path}: {problem}")


# -- check ------------------------------------------------------------------------------------


class _Steps:
    """Runs the steps of ``providers check``, timing each, stopping at the first failure."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.failed: DSOError | None = None

    def run(self, step: str, action: Callable[[], str]) -> bool:
        if self.failed is not None:
            return False
        started = time.perf_counter()
        try:
            detail, ok = action(), True
        except DSOError as exc:
            self.failed = exc
            detail, ok = _plain(exc.message), False
        ms = round((time.perf_counter() - started) * 1000, 3)
        self.steps.append({"step": step, "ok": ok, "ms": ms, "detail": detail})
        return ok

    def skip(self, step: str, detail: str) -> None:
        self.steps.append({"step": step, "ok": None, "ms": 0.0, "detail": detail})


def _resolve_for_check(
    app: Application, name: str, config: Config | None
) -> tuple[Callable[[], ProviderCommand], dict[str, Any] | None, float]:
    """The command resolver, the configure settings (None: not configured) and the timeout."""
    from kernel.provider_host import ProviderHost, find_command, plugins_dir

    if config is not None and name in config.providers:
        plan = ProviderHost(config, app.layout).plan(name)
        return plan.resolve, dict(plan.settings), plan.config.timeout
    directory = plugins_dir(app.layout)
    return (lambda: find_command(name, directory)), None, 10.0


@providers.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the steps as JSON.")
@pass_app
def check(app: Application, name: str, as_json: bool) -> None:
    """Start provider NAME, handshake, ping, configure it, and stop it; time each step.

    NAME is a provider from the configuration (its settings are sent with configure) or a
    program found by `providers list` (configure is then skipped). Exits 7 at the first
    step that fails, with the reason.

    \b
    Examples:
      docker dso providers check local
      docker dso providers check vault --json | jq '.steps[] | select(.ok == false)'
      docker dso --log-level debug providers check aws    shows the provider's own log
    """
    from kernel.provider_host import ProviderClient
    from kernel.provider_host.process import describe_status

    config = _config(app)
    steps = _Steps()
    state: dict[str, Any] = {}

    def resolve() -> str:
        resolver, state["settings"], state["timeout"] = _resolve_for_check(app, name, config)
        command = state["command"] = resolver()
        verified = "sha256 checked at exec" if command.sha256 else "no checksum"
        if command.origin != "plugins-dir":
            verified = "part of dso"
        return f"{command.origin}: {' '.join(command.argv)} ({verified})"

    def start() -> str:
        client = state["client"] = ProviderClient.start(
            state["command"], request_timeout=state["timeout"]
        )
        hs = client.handshake
        caps = ", ".join(sorted(str(c) for c in hs.capabilities))
        return f"pid {client.pid}: {hs.name} {hs.version}, protocol {hs.protocol}, {caps}"

    def ping() -> str:
        return f"round trip {state['client'].ping() * 1000:.3f} ms"

    def configure() -> str:
        state["client"].configure(state["settings"])
        return f"accepted {len(state['settings'])} setting(s)"

    def shutdown() -> str:
        status = state.pop("client").close()
        if status != 0:
            raise DSOError(f"{describe_status(status)} (expected status 0 after shutdown)")
        return "exited with status 0"

    try:
        steps.run("resolve", resolve)
        steps.run("start", start)
        steps.run("ping", ping)
        if steps.failed is None and state.get("settings") is None:
            steps.skip("configure", f"{name!r} is not configured in dso.yaml: skipped")
        else:
            steps.run("configure", configure)
        steps.run("shutdown", shutdown)
    finally:
        if "client" in state:
            state.pop("client").close()
    _report_check(app, name, steps, as_json)


def _report_check(app: Application, name: str, steps: _Steps, as_json: bool) -> None:
    failed = steps.failed
    if as_json:
        app.out_json(
            {
                "provider": name,
                "ok": failed is None,
                "error": None if failed is None else _plain(failed.message),
                "steps": steps.steps,
            }
        )
    else:
        for step in steps.steps:
            mark = {True: "ok", False: "FAILED", None: "skipped"}[step["ok"]]
            app.out(f"{step['step']:<10} {mark:<8} {step['ms']:>9.3f} ms  {step['detail']}")
    if failed is not None:
        failing = next(s["step"] for s in steps.steps if s["ok"] is False)
        hint = f"\n  hint: {failed.hint}" if failed.hint else ""
        message = f"provider {name!r}: {failing} failed: {_plain(failed.message)}{hint}"
        app.abort(message, ExitCode.PROVIDER)


def _plain(message: str) -> str:
    """A provider error's message without its ``provider 'x': `` prefix."""
    if message.startswith("provider '") and "': " in message:
        return message.split("': ", 1)[1]
    return message


providers.add_command(providers_test)
providers.add_command(install)
providers.add_command(remove)
providers.add_command(new)

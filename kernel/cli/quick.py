"""``status --json`` and ``version [--json]`` answered without click: kept quick.

``docker dso status --json`` is two Python starts (docker runs the plugin's metadata call
first), the agent's answer and its printing; importing click alone (~30 ms) and loading the
configuration (~40 ms) would be half of issue 11's 150 ms. So :func:`quick_run` answers the
command line ``status --json`` itself, and only when nothing could make the full CLI's answer
differ:

- the arguments are exactly ``status --json``, and no environment variable click reads for it
  is set (:data:`CLICK_ENV`, ``DSO_STATUS_*``, shell completion); ``DSO_MODE`` may be ``local``
  or ``agent``;
- ``agent.socket`` is known without loading the configuration (no file, or the record of
  :mod:`kernel.config.agent_socket` matches the file);
- the agent answers.

Otherwise nothing has been printed and the full CLI runs the command (offline document, exit
10, warnings, errors). Either way the bytes on stdout are the same: the JSON is made by
:func:`~kernel.cli.json_output.json_text`, which ``--json`` of every command prints. Nothing on
this path logs, so skipping the log setup is invisible too.

``version`` and ``version --json`` (issue 13: ``docker dso version`` ≤ 80 ms through docker) are
answered here whenever no environment variable click reads for them is set (:data:`CLICK_ENV`,
``DSO_VERSION_*``): :mod:`kernel.cli.version_doc` makes the document and the lines for both
paths, so the bytes, and exit 6 when the daemon does not answer, are the same.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

#: Environment variables click would read for ``status --json`` besides ``DSO_MODE`` and
#: ``DSO_STATUS_*`` (root options, also by their automatic names; test_cli_quick checks the
#: list against the click tree).
CLICK_ENV = frozenset(
    {"DSO_CONFIG", "DSO_CONFIG_PATH", "DSO_LOG_LEVEL", "DSO_VERSION", "DSO__CLICK_DEFAULT_HELP"}
)
#: ``--mode``'s choices (kernel.cli.modes.MODES, which imports click).
MODES = ("local", "agent")
#: click's exit code for a broken pipe on stdout (it swallows EPIPE, then exits 1).
_BROKEN_PIPE = 1
_INTERRUPTED = 130
#: kernel.errors.ExitCode.DOCKER (kernel.errors is not imported for one number).
_DOCKER_UNAVAILABLE = 6
#: The command lines of ``version`` answered here.
VERSION_ARGS = (["version"], ["version", "--json"])


def quick_run(argv: Sequence[str]) -> int | None:
    """The exit code of ``argv`` answered here, or None: the full CLI must run it."""
    args = list(argv)
    if args in VERSION_ARGS and sys.stdout is not None and not _click_reads_env("version"):
        return _version(as_json=len(args) == 2)
    if args != ["status", "--json"] or sys.stdout is None or _click_reads_env("status"):
        return None
    if os.environ.get("DSO_MODE", "local") not in MODES or "DSO_CONFIG" in os.environ:
        return None
    from kernel.paths import installation_mode

    mode = installation_mode()
    try:
        doc = _status(mode)
    except KeyboardInterrupt:
        return _interrupted()
    if doc is None:
        return None
    from kernel.cli.json_output import json_text

    return _print(json_text(doc), 0)


def _version(*, as_json: bool) -> int:
    """``version [--json]``: every case of it (the daemon unreachable too) is answered here."""
    from kernel.cli.version_doc import version_document, version_lines

    try:
        doc, error = version_document()
    except KeyboardInterrupt:
        return _interrupted()
    if as_json:
        from kernel.cli.json_output import json_text

        text = json_text(doc)
    else:
        text = "\n".join(version_lines(doc))
    return _print(text, 0 if error is None else _DOCKER_UNAVAILABLE)


def _interrupted() -> int:
    # What the full CLI prints for a Ctrl-C inside a command (a blank line, then this).
    sys.stderr.write("\nInterrupted.\n")
    sys.stderr.flush()
    return _INTERRUPTED


def _print(text: str, code: int) -> int:
    """``text`` and a newline on stdout, as click.echo writes it; ``code``, or click's code for
    a reader that left."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # `… | head -c 100`: the reader left. As click does: no message, exit 1, and no
        # complaint from the interpreter's own flush at exit.
        import contextlib

        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _BROKEN_PIPE
    return code


def _click_reads_env(command: str) -> bool:
    prefix = f"DSO_{command.upper()}_"
    for name in os.environ:
        if name in CLICK_ENV or name.startswith(prefix):
            return True
        if name.startswith("_") and name.endswith("_COMPLETE"):  # click's shell completion
            return True
    return False


def _status(mode: str) -> Any:
    """The agent's status document, or None when only the full CLI can tell."""
    from kernel.agent.api.client import AgentClient
    from kernel.config.agent_socket import recorded_socket
    from kernel.errors import DSOError
    from kernel.paths import agent_layout, local_layout

    layout = agent_layout() if mode == "agent" else local_layout()
    try:
        known, configured = recorded_socket(None, layout.cache)
        if not known:
            return None
        return AgentClient(configured or layout.socket).call("status")
    except DSOError:
        return None

"""Splitting a ``docker dso`` command line into compose's global flags and the command's own.

``docker dso up -f a.yml --profile x -d web`` must read the project exactly as
``docker compose -f a.yml --profile x config`` would, and then run ``up -d web``. Compose's
global flags (``docker compose --help``) are recognised anywhere for ``up``, ``down`` and
``validate``, whose own flags never collide with them; for ``docker dso compose <cmd>`` only
before the command, as compose itself does (``logs -f`` means follow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kernel.errors import UsageError

#: Global flags that take a value: name → the canonical long name.
VALUE_FLAGS = {
    "-f": "--file",
    "--file": "--file",
    "-p": "--project-name",
    "--project-name": "--project-name",
    "--project-directory": "--project-directory",
    "--profile": "--profile",
    "--env-file": "--env-file",
    "--ansi": "--ansi",
    "--progress": "--progress",
    "--parallel": "--parallel",
}
#: Global flags without a value.
BOOL_FLAGS = frozenset({"--compatibility", "--dry-run", "--all-resources"})
#: Flags dso sets itself on the second compose call (from the first call's answer).
_PINNED = frozenset({"--file", "--project-name", "--project-directory"})
#: ``docker compose up`` flags that take a value (compose v2 ``up --help``); the arguments of
#: ``up`` that are neither flags nor their values are service names.
#: (``-t``, the short ``--timeout``, is handled with the other short flags.)
UP_VALUE_FLAGS = frozenset(
    {
        "--attach",
        "--exit-code-from",
        "--no-attach",
        "--pull",
        "--scale",
        "--timeout",
        "--wait-timeout",
    }
)


@dataclass(frozen=True, slots=True)
class ComposeArgs:
    """A command line split into compose's global flags and the rest."""

    #: ``-f`` values, as given (relative to the working directory).
    files: tuple[str, ...] = ()
    project_name: str | None = None
    project_directory: str | None = None
    profiles: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    #: Every global flag, normalised to ``--name=value`` tokens, in order: for reading the model.
    global_flags: tuple[str, ...] = ()
    #: The global flags repeated on the second call: all but -f, -p and --project-directory.
    shared_flags: tuple[str, ...] = ()
    #: What is left: the compose command's own flags and arguments, in order.
    rest: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UpSelection:
    """Which services ``docker compose up`` starts, as its command line says."""

    #: The services named (empty: every service of the project).
    services: tuple[str, ...] = ()
    #: ``--no-deps``: the named services without what they depend on.
    no_deps: bool = False


def up_selection(rest: Sequence[str]) -> UpSelection:
    """The services named by ``up``'s own arguments (``ComposeArgs.rest``), e.g.
    ``-d --scale web=2 -t 5 web worker`` → ``web``, ``worker``."""
    services: list[str] = []
    no_deps = False
    index = 0
    while index < len(rest):
        arg = rest[index]
        index += 1
        if arg == "--":
            services.extend(rest[index:])
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name == "--no-deps":
                no_deps = value.lower() not in ("false", "0") if eq else True
            elif name in UP_VALUE_FLAGS and not eq:
                index += 1
            continue
        if arg.startswith("-") and len(arg) > 1:
            # Short flags may be grouped (-dV); -t takes the rest of the group, else the next.
            if arg.endswith("t") and "t" not in arg[1:-1]:
                index += 1
            continue
        services.append(arg)
    return UpSelection(tuple(services), no_deps)


def split_args(args: Sequence[str], *, anywhere: bool = True) -> ComposeArgs:
    """Split ``args``; with ``anywhere=False`` global flags end at the first other token."""
    files: list[str] = []
    profiles: list[str] = []
    env_files: list[str] = []
    project_name: str | None = None
    project_directory: str | None = None
    global_flags: list[str] = []
    shared: list[str] = []
    rest: list[str] = []
    tokens = list(args)
    index = 0
    while index < len(tokens):
        arg = tokens[index]
        index += 1
        if arg == "--":
            rest.extend(tokens[index - 1 :])
            break
        name, value = _flag(arg)
        if name in BOOL_FLAGS:
            if value is not None:
                raise UsageError(f"{name} takes no value")
            global_flags.append(name)
            shared.append(name)
            continue
        canonical = VALUE_FLAGS.get(name or "")
        if canonical is None:
            rest.append(arg)
            if not anywhere:
                rest.extend(tokens[index:])
                break
            continue
        if value is None:
            if index >= len(tokens):
                raise UsageError(f"{name} needs a value")
            value = tokens[index]
            index += 1
        if canonical == "--file":
            if value == "-":
                raise UsageError(
                    "-f - (a compose file on stdin) is not supported: dso feeds compose on stdin",
                    hint="write the model to a file and pass -f FILE",
                )
            files.append(value)
        elif canonical == "--project-name":
            project_name = value
        elif canonical == "--project-directory":
            project_directory = value
        elif canonical == "--profile":
            profiles.append(value)
        elif canonical == "--env-file":
            env_files.append(value)
        normalised = f"{canonical}={value}"
        global_flags.append(normalised)
        if canonical not in _PINNED:
            shared.append(normalised)
    return ComposeArgs(
        files=tuple(files),
        project_name=project_name,
        project_directory=project_directory,
        profiles=tuple(profiles),
        env_files=tuple(env_files),
        global_flags=tuple(global_flags),
        shared_flags=tuple(shared),
        rest=tuple(rest),
    )


def _flag(arg: str) -> tuple[str | None, str | None]:
    """``--file=x`` → (``--file``, ``x``); ``-fx``, ``-f=x`` → (``-f``, ``x``); else (arg, None)."""
    if arg.startswith("--"):
        name, eq, value = arg.partition("=")
        return name, value if eq else None
    if arg.startswith("-") and len(arg) > 2 and arg[:2] in ("-f", "-p"):
        return arg[:2], arg[2:].removeprefix("=")
    if arg.startswith("-"):
        return arg, None
    return None, None

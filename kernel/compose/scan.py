"""Finding secret references in a compose model and what each service needs to receive them.

The model is the JSON of ``docker compose config --format json``: ``environment`` is always a
map (list forms and ``env_file`` already merged), and every literal ``$`` in a string is written
``$$`` (compose escapes its output so that it can be read again). So a value is unescaped before
it is read as a reference, and anything dso writes back is escaped (:mod:`kernel.compose.rewrite`).

Only ``dso://`` and ``dsofile://`` values of ``environment`` are dso's. Problems are collected,
not raised, so ``validate`` can list all of them; each names the service and variable.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import ComposeError, DSOError, SecretReferenceError
from kernel.injection.atomic_dir import Owner
from kernel.injection.filenames import file_name
from kernel.labels import MOUNT_LABEL
from kernel.reference import Delivery, SecretReference, is_reference, parse_reference

#: Where ``dsofile://`` files appear inside a container unless the service says otherwise.
DEFAULT_MOUNT = "/run/secrets/dso"
#: Directories a container needs for itself: a secrets mount there would hide them.
SYSTEM_DIRS = ("/dev", "/proc", "/sys")
#: A portable environment variable name (POSIX.1-2017, 8.1): the names every shell keeps.
_POSIX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Looks up an image's configured ``USER`` (None: image not present locally).
ImageUser = Callable[[str], "str | None"]


def unescape(text: str) -> str:
    """A string of the model as the container will see it (``$$`` → ``$``)."""
    return text.replace("$$", "$")


def escape(text: str) -> str:
    """A literal string written so that compose's interpolation leaves it unchanged."""
    return text.replace("$", "$$")


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that keeps a reference from being delivered; ``error`` says what and why."""

    service: str
    variable: str | None
    #: The reference as written (never a value), if the problem is about one.
    reference: str | None
    error: DSOError

    @property
    def message(self) -> str:
        return self.error.message


@dataclass(slots=True)
class ServiceSecrets:
    """What one service needs: its references by variable, and for files, where and whose."""

    service: str
    #: ``dso://`` variables: name → reference.
    env: dict[str, SecretReference] = field(default_factory=dict)
    #: ``dsofile://`` variables: name → reference.
    files: dict[str, SecretReference] = field(default_factory=dict)
    #: ``dsofile://`` variables: name → file name in the container.
    file_names: dict[str, str] = field(default_factory=dict)
    #: The references as written, by variable (for the ``dso.refs`` label and messages).
    written: dict[str, str] = field(default_factory=dict)
    #: Directory of the files inside the container.
    mount_path: str = DEFAULT_MOUNT
    #: Who owns the files (None until known, and when there are no files).
    owner: Owner | None = None

    @property
    def references(self) -> dict[str, SecretReference]:
        return {**self.env, **self.files}

    def file_path(self, variable: str) -> str:
        return posixpath.join(self.mount_path, self.file_names[variable])


@dataclass(slots=True)
class Scan:
    """The services that use references (in model order) and every problem found."""

    project: str
    services: dict[str, ServiceSecrets] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def references(self) -> list[SecretReference]:
        """Every distinct reference, in order of first use."""
        seen: dict[SecretReference, None] = {}
        for secrets in self.services.values():
            seen.update(dict.fromkeys(secrets.references.values()))
        return list(seen)

    def only(self, services: Collection[str]) -> Scan:
        """The part of this scan about ``services`` (what ``up SERVICE…`` starts)."""
        return Scan(
            self.project,
            {name: s for name, s in self.services.items() if name in services},
            [p for p in self.problems if p.service in services],
        )


def scan_model(model: Mapping[str, Any], image_user: ImageUser | None = None) -> Scan:
    """Find every reference of ``model`` and check what its service needs.

    ``image_user`` is asked for the image's ``USER`` of services with ``dsofile://`` references
    and no ``user:``; without it such files belong to root.
    """
    scan = Scan(project=str(model.get("name", "")))
    for name, service in (model.get("services") or {}).items():
        secrets = _scan_service(name, service, scan.problems)
        if secrets is None:
            continue
        scan.services[name] = secrets
        if secrets.files:
            _check_mount(secrets, service, scan.problems)
            secrets.owner = _owner(scan.project, secrets, service, image_user, scan.problems)
    return scan


def _scan_service(
    name: str, service: Mapping[str, Any], problems: list[Problem]
) -> ServiceSecrets | None:
    secrets = ServiceSecrets(name)
    for variable, raw in (service.get("environment") or {}).items():
        if not isinstance(raw, str):
            continue
        text = unescape(raw)
        if not is_reference(text):
            continue
        secrets.written[variable] = text
        bad_name = env_name_problem(variable)
        if bad_name is not None:
            problems.append(Problem(name, variable, text, bad_name))
            continue
        try:
            ref = parse_reference(text)
        except SecretReferenceError as exc:
            problems.append(Problem(name, variable, text, exc))
            continue
        if ref.delivery is Delivery.ENV:
            secrets.env[variable] = ref
            continue
        try:
            secrets.file_names[variable] = file_name(variable)
        except ValueError as exc:
            problems.append(
                Problem(name, variable, text, ComposeError(f"cannot name a file: {exc}"))
            )
            continue
        secrets.files[variable] = ref
    if not secrets.written:
        return None
    return secrets


def env_name_problem(variable: str) -> ComposeError | None:
    """Why ``variable`` cannot carry a secret (None: it can). Docker passes any name, but
    ``sh`` and most programs silently drop a name that is not a POSIX name (``1BAD``, ``ÜNI``,
    ``A-B``): the secret, or its file's path, would never arrive."""
    if _POSIX_NAME.fullmatch(variable):
        return None
    if not variable:
        why = "is empty"
    elif variable[0] in "0123456789":
        why = "starts with a digit"
    else:
        bad = next(ch for ch in variable if not _POSIX_NAME.fullmatch("_" + ch))
        why = f"contains {bad!r}"
    return ComposeError(
        f"the variable name {variable!r} {why}: shells drop such names from the environment, "
        "so the secret would silently not arrive",
        hint="name it with letters, digits and _ only, not starting with a digit, e.g. DB_PASSWORD",
    )


def _check_mount(
    secrets: ServiceSecrets, service: Mapping[str, Any], problems: list[Problem]
) -> None:
    labels = service.get("labels") or {}
    raw = labels.get(MOUNT_LABEL)
    if isinstance(raw, str):
        path = unescape(raw)
        if not path.startswith("/") or posixpath.normpath(path) != path or path == "/":
            problems.append(
                Problem(
                    secrets.service,
                    None,
                    None,
                    ComposeError(
                        f"label {MOUNT_LABEL}={path!r} must be a normalised absolute directory "
                        "other than /, e.g. /run/secrets/app"
                    ),
                )
            )
            return
        system = next((d for d in SYSTEM_DIRS if path == d or path.startswith(d + "/")), None)
        if system is not None:
            problems.append(
                Problem(
                    secrets.service,
                    None,
                    None,
                    ComposeError(
                        f"label {MOUNT_LABEL}={path!r} is inside {system}, which the container "
                        "needs for itself: the secrets mount would hide it",
                        hint="choose a directory of its own, e.g. /run/secrets/app",
                    ),
                )
            )
            return
        secrets.mount_path = path
    taken = [v.get("target") for v in service.get("volumes") or [] if isinstance(v, Mapping)]
    taken += [
        s.get("target") or f"/run/secrets/{s.get('source')}"
        for s in service.get("secrets") or []
        if isinstance(s, Mapping)
    ]
    if secrets.mount_path in {unescape(t) for t in taken if isinstance(t, str)}:
        problems.append(
            Problem(
                secrets.service,
                None,
                None,
                ComposeError(
                    f"{secrets.mount_path} is already a mount of this service; dsofile:// needs it",
                    hint=f"choose another directory with the label {MOUNT_LABEL}",
                ),
            )
        )


def _owner(
    project: str,
    secrets: ServiceSecrets,
    service: Mapping[str, Any],
    image_user: ImageUser | None,
    problems: list[Problem],
) -> Owner | None:
    raw = service.get("user")
    source = "user:"
    if isinstance(raw, str) and raw:
        user = unescape(raw)
    else:
        image = service.get("image") or f"{project}-{secrets.service}"
        user = (image_user(unescape(str(image))) if image_user else None) or ""
        source = f"the image's USER ({image})"
        if not user:
            return Owner(0, 0)
    try:
        return parse_user(user)
    except ValueError as exc:
        problems.append(
            Problem(
                secrets.service,
                None,
                None,
                ComposeError(
                    f"{source} {user!r}: {exc}; dso needs a numeric uid to own the secret files",
                    hint='set the service\'s user: to numbers, e.g. user: "1000:1000"',
                ),
            )
        )
        return None


def parse_user(user: str) -> Owner:
    """``uid[:gid]`` (or ``root``) → :class:`Owner`; a name raises :class:`ValueError`.

    Without a group the files get gid 0, as Docker does for a uid the image does not know;
    the files are 0400, so the group grants nothing.
    """
    uid_text, _, gid_text = user.partition(":")
    if uid_text == "root":
        uid_text = "0"
    if gid_text == "root":
        gid_text = "0"
    if not uid_text.isdigit():
        raise ValueError("a user name cannot be resolved without reading the image's /etc/passwd")
    if gid_text and not gid_text.isdigit():
        raise ValueError("a group name cannot be resolved without reading the image's /etc/group")
    return Owner(int(uid_text), int(gid_text) if gid_text else 0)

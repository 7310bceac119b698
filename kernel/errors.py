"""The one exception tree of dso.

Every error a user can meet is a :class:`DSOError`; the CLI prints its message on one line and
exits with its :attr:`~DSOError.exit_code`. Anything else escaping to the CLI is a bug and gets a
traceback. Foreign exceptions (docker, yaml, cryptography, OS) are translated at the module that
calls them and never cross into the rest of the kernel.

Exception messages never contain secret values: name the reference, never the bytes.

    DSOError                         exit 1  generic failure
    ├── UsageError                   exit 2  bad command-line input
    ├── ConfigError                  exit 3  invalid configuration (file, line, key)
    │   ├── ConfigPermissionError    exit 3  config writable or owned by others, or too readable
    │   ├── ComposeError             exit 3  docker compose rejected the project (its message shown)
    │   └── ExtensionError           exit 3  an extension could not be loaded (import, unknown hook)
    ├── VaultError                   exit 4  local vault problems
    │   ├── VaultNotFoundError               no vault.enc: run `docker dso init`
    │   ├── VaultExistsError                 init would clobber an existing vault
    │   ├── VaultKeyError                    wrong key or passphrase, or the file was tampered with
    │   ├── VaultCorruptError                not a vault file, truncated, or unsupported format
    │   └── VaultBusyError                   another process holds the vault lock too long
    ├── SecretError                  exit 5  secrets and references
    │   ├── SecretNotFoundError
    │   ├── InvalidSecretNameError
    │   ├── InvalidSecretValueError          empty or oversized value
    │   └── SecretReferenceError             a dso:// or dsofile:// reference that does not parse
    ├── DockerError                  exit 6  the Docker daemon refused or failed a call
    │   ├── DockerUnavailableError           no daemon answers
    │   ├── DockerNotFoundError              the container, network or image does not exist
    │   └── DockerConflictError              a name is already in use, or the object is busy
    ├── ProviderError                exit 7  a provider failed (carries a wire code)
    │   ├── ProtocolError                    the provider broke the protocol
    │   ├── ProviderNotFoundError            no such provider configured or discovered
    │   ├── ProviderStartError               it did not start or did not complete the handshake
    │   ├── ProviderUnavailableError         its circuit breaker is open
    │   ├── ProviderTimeoutError             a request passed its deadline
    │   └── ProviderInstallError             providers install/remove refused (checksum, protocol)
    ├── StorageError                 exit 8  state could not be written (disk full, permissions)
    ├── RotationError                exit 9  a rotation failed or was rolled back
    │   └── RotationBusyError                another rotation of the same target holds its lock
    └── AgentError                   exit 10 the agent cannot start (another one runs) or answer
        ├── AgentUnavailableError            nothing answers on the agent's socket
        └── AgentRequestError                the agent answered a request with an error
"""

from __future__ import annotations

from enum import IntEnum

TYPE_CHECKING = False
if TYPE_CHECKING:  # pathlib is not imported at run time: `docker dso version` would pay for it
    from pathlib import Path


class ExitCode(IntEnum):
    """Process exit codes of ``dso`` and ``docker dso``; documented in docs/errors.md."""

    #: Success.
    OK = 0
    #: A failure with no more specific code.
    ERROR = 1
    #: The command line was wrong: unknown option, missing argument, bad value.
    USAGE = 2
    #: The configuration is invalid, unreadable or has unsafe permissions.
    CONFIG = 3
    #: The local vault is missing, locked, corrupt, or the key is wrong.
    VAULT = 4
    #: A secret is missing, its name or value is invalid, or a reference does not parse.
    SECRET = 5
    #: The Docker daemon is unreachable or refused a call.
    DOCKER = 6
    #: A provider failed, timed out, broke the protocol or is isolated by its breaker.
    PROVIDER = 7
    #: dso could not write its own files (disk full, permissions); nothing was changed.
    STORAGE = 8
    #: A rotation failed and was rolled back, or needs operator attention.
    ROTATION = 9
    #: The agent could not start (another agent runs for this installation) or is not running.
    AGENT = 10
    #: Interrupted by the user (Ctrl-C).
    INTERRUPTED = 130


class DSOError(Exception):
    """Root of every error dso reports to a user. Raise a subclass, not this."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: What the user should do next, printed after the message.
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(DSOError):
    """Raised for command-line input that cannot work; fix the command and retry."""

    exit_code = ExitCode.USAGE


class ConfigError(DSOError):
    """Raised when a configuration file is missing, malformed or invalid.

    Carries the file, line and key so the message points at the exact place to edit.
    """

    exit_code = ExitCode.CONFIG

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.key = key
        where = ""
        if self.path:
            where = self.path + (f":{line}" if line else "")
            where += (f":{column}" if line and column else "") + ": "
        if key:
            where += f"{key}: "
        super().__init__(where + message, hint=hint)
        #: The message without the location prefix, for --json output.
        self.reason = message


class ConfigPermissionError(ConfigError):
    """Raised when a config is group/world writable, owned by another user than dso's (or
    root), or holds credentials and is world readable.

    Fix with ``chmod 600 <file>``, or ``chown`` it to the user dso runs as.
    """


class ComposeError(ConfigError):
    """Raised when ``docker compose`` rejects the project (its own message is shown) or a service
    cannot receive its secrets as written; fix the compose file named in the message.
    """


class ExtensionError(ConfigError):
    """Raised when an installed extension cannot be loaded: its import fails, it implements an
    unknown hook (a typo such as ``dso_befor_swap``), its hook arguments do not match, or its
    file is writable by others. Fix or remove it, or skip it with
    ``DSO_DISABLE_EXTENSIONS=<name>``; ``docker dso extensions list`` shows each one.
    """


class VaultError(DSOError):
    """Raised for problems with the local encrypted vault (``vault.enc``)."""

    exit_code = ExitCode.VAULT


class VaultNotFoundError(VaultError):
    """Raised when there is no vault yet; run ``docker dso init``."""


class VaultExistsError(VaultError):
    """Raised when ``init`` would overwrite an existing vault; nothing was touched."""


class VaultKeyError(VaultError):
    """Raised when the vault cannot be decrypted: wrong key or passphrase, or tampering.

    AES-GCM cannot tell these apart, and must not: both mean "do not trust this file".
    """


class VaultCorruptError(VaultError):
    """Raised when the file is not a dso vault, is truncated, or uses an unknown format version."""


class VaultBusyError(VaultError):
    """Raised when another process holds the vault lock longer than the wait limit."""


class SecretError(DSOError):
    """Raised for problems with a secret's name, value or reference."""

    exit_code = ExitCode.SECRET


class SecretNotFoundError(SecretError):
    """Raised when a secret reference names nothing in its provider."""


class InvalidSecretNameError(SecretError):
    """Raised for names that are empty, absolute, contain ``..`` or control characters."""


class InvalidSecretValueError(SecretError):
    """Raised for empty or oversized secret values. The message never contains the value."""


class SecretReferenceError(SecretError):
    """Raised when a ``dso://`` or ``dsofile://`` reference does not parse."""


class DockerError(DSOError):
    """Raised when the Docker daemon refuses or fails a call."""

    exit_code = ExitCode.DOCKER


class DockerUnavailableError(DockerError):
    """Raised when no Docker daemon answers at the configured address."""


class DockerNotFoundError(DockerError):
    """Raised when the daemon answers 404: the container, network or image named is not there."""


class DockerConflictError(DockerError):
    """Raised when the daemon answers 409: a name is already in use or the object is busy."""


class ProviderError(DSOError):
    """Raised when a provider fails. ``code`` is the protocol's wire error code."""

    exit_code = ExitCode.PROVIDER

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        code: str = "internal",
        hint: str | None = None,
    ) -> None:
        self.provider = provider
        self.code = code
        prefix = f"provider {provider!r}: " if provider else ""
        super().__init__(prefix + message, hint=hint)


class ProtocolError(ProviderError):
    """Raised when a peer breaks the provider protocol (bad frame, bad handshake, bad message)."""


class ProviderNotFoundError(ProviderError):
    """Raised when a reference or command names a provider that is not configured or found."""


class ProviderStartError(ProviderError):
    """Raised when a provider process does not start or does not complete its handshake."""


class ProviderUnavailableError(ProviderError):
    """Raised when a provider's circuit breaker is open; it is retried after the cooldown."""


class ProviderTimeoutError(ProviderError):
    """Raised when a provider request passes its deadline."""


class ProviderInstallError(ProviderError):
    """Raised when ``providers install`` or ``remove`` refuses: a checksum does not match, the
    program speaks no protocol dso speaks, the name is taken (``--force``), or the source is not
    a provider. Nothing in the plugins directory was changed."""


class StorageError(DSOError):
    """Raised when dso cannot write its own files; the previous file is left unchanged."""

    exit_code = ExitCode.STORAGE


class RotationError(DSOError):
    """Raised when a rotation fails; the message says what state the containers were left in."""

    exit_code = ExitCode.ROTATION


class RotationBusyError(RotationError):
    """Raised when another rotation of the same container holds its lock past the wait limit.

    Nothing was changed; retry later, or pass a longer ``--wait``.
    """


class AgentError(DSOError):
    """Raised when the agent cannot start (another agent holds this installation; the message
    names its pid) or a command needs a running agent that does not answer."""

    exit_code = ExitCode.AGENT


class AgentUnavailableError(AgentError):
    """Raised when nothing answers on the agent's socket (no agent runs, or another user's
    socket this user may not open): start it (``docker dso agent``, ``docker dso system
    enable``) or ask as a member of group ``dso``."""


class AgentRequestError(AgentError):
    """Raised when the agent answered a socket request with an error (bad request, forbidden,
    not found, busy); ``status`` is the HTTP-style code it gave."""

    def __init__(self, message: str, *, status: int = 500, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status

"""The configuration schema: every key dso reads, once, as a tree of :class:`Field` specs.

This tree is the single source of truth. The validator walks it to check a file, the model takes
its defaults from it, ``docker dso config show`` renders through it, and a test fails when a key
in it is missing from ``docs/configuration.md``. Add a key here (and to the model and the doc);
nowhere else.

Defaults are written as a user would write them in the file (``"10s"``, ``"500Mi"``), so the docs
and ``config show`` print them verbatim; :func:`default` converts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from kernel.config.units import parse_duration, parse_size


class FieldType(StrEnum):
    """What a key holds; the value is the name the docs use."""

    #: A mapping with a fixed set of keys (``agent``, ``agent.cache``).
    SECTION = "section"
    #: A mapping from names the user picks to sections (``providers``).
    MAP = "map"
    #: A whole number.
    INT = "integer"
    #: Text.
    STRING = "string"
    #: ``true`` or ``false``.
    BOOL = "boolean"
    #: ``100ms``, ``30s``, ``5m``, ``1h30m``, ``1d``, or a whole number of seconds.
    DURATION = "duration"
    #: ``500Mi``, ``2Gi``, ``10M``, or a whole number of bytes.
    SIZE = "size"
    #: An absolute file system path; ``~`` is expanded.
    PATH = "path"
    #: A list of environment variable names.
    NAMES = "list of names"
    #: Anything; checked later by whoever reads it (a provider's own settings).
    ANY = "any"


@dataclass(frozen=True, slots=True)
class Field:
    """The spec of one configuration key."""

    name: str
    type: FieldType
    doc: str
    #: The default as written in a file; ``None`` when the key has none (or is required).
    default: Any = None
    required: bool = False
    #: The only accepted values (strings).
    choices: tuple[str, ...] = ()
    #: STRING: a regular expression the value must match (fully), and what it means in words.
    pattern: str | None = None
    pattern_doc: str = ""
    #: Smallest accepted value: an int for INT, seconds for DURATION, bytes for SIZE.
    minimum: float | None = None
    #: Largest accepted value, in the same unit as ``minimum``.
    maximum: float | None = None
    #: The value is a credential: masked by ``config show``, never echoed in messages.
    credential: bool = False
    #: SECTION: its keys, in the order docs and ``config show`` print them.
    fields: tuple[Field, ...] = ()
    #: MAP: the spec of each named entry.
    item: Field | None = None
    #: MAP: a regular expression every entry name must match (fully).
    key_pattern: str | None = None
    #: SECTION: where keys not in ``fields`` go instead of being errors (provider settings).
    extra: Field | None = None

    def child(self, name: str) -> Field | None:
        for spec in self.fields:
            if spec.name == name:
                return spec
        return None


#: Provider types dso ships.
PROVIDER_TYPES = ("local", "vault", "aws", "azure")

#: Provider names: what ``dso://<provider>/…`` references and ``default_provider`` use.
PROVIDER_NAME_PATTERN = r"[a-z][a-z0-9_-]{0,62}"

#: Setting names that hold credentials. A provider setting is a credential when its name is one of
#: these or ends in ``_`` + one of these (``root_token``, ``db_password``), at any depth, compared
#: case-insensitively with ``-`` read as ``_``.
CREDENTIAL_KEYS = (
    "token",
    "secret",
    "password",
    "passphrase",
    "client_secret",
    "secret_access_key",
    "secret_id",
    "api_key",
    "private_key",
)


def is_credential_key(name: str) -> bool:
    """True when a provider setting called ``name`` holds a credential (see CREDENTIAL_KEYS)."""
    key = name.lower().replace("-", "_")
    return any(key == word or key.endswith("_" + word) for word in CREDENTIAL_KEYS)


_BREAKER = Field(
    "breaker",
    FieldType.SECTION,
    "Circuit breaker that isolates a failing provider so one broken back end cannot stall "
    "every rotation.",
    fields=(
        Field(
            "failure_threshold",
            FieldType.INT,
            "Consecutive failed requests that open the breaker (requests then fail fast).",
            default=5,
            minimum=1,
        ),
        Field(
            "cooldown",
            FieldType.DURATION,
            "How long the breaker stays open before one trial request is let through.",
            default="30s",
            minimum=0.001,
        ),
    ),
)

_PROVIDER = Field(
    "<name>",
    FieldType.SECTION,
    "One provider: the back end that secret references `dso://<name>/…` are fetched from.",
    fields=(
        Field(
            "type",
            FieldType.STRING,
            "Which provider program serves it: `local` (the encrypted vault in the dso home), "
            "`vault` (HashiCorp Vault / OpenBao), `aws` (AWS Secrets Manager), `azure` "
            "(Azure Key Vault), or any other name `<type>` for a third-party program "
            "`dso-provider-<type>` installed in the plugins directory (docs/providers.md).",
            required=True,
            pattern=PROVIDER_NAME_PATTERN,
            pattern_doc="a provider program name: lowercase letters, digits, '_' and '-', "
            "starting with a letter (at most 63)",
        ),
        Field(
            "timeout",
            FieldType.DURATION,
            "Deadline of each request to the provider; a request past it fails and counts "
            "against the breaker.",
            default="10s",
            minimum=0.001,
        ),
        Field(
            "idle_timeout",
            FieldType.DURATION,
            "Stop the provider's process after this long with no request and no watch; the "
            "next request starts it again (a cold start of 50-300 ms) with its breaker and "
            "latency kept. The default is shorter than the 5 min poll, so a provider asked only "
            "at each poll does not keep its SDK resident between polls; one that watches (the "
            "local vault's inotify) never idles. `0s` keeps it running.",
            default="1m",
        ),
        Field(
            "env",
            FieldType.NAMES,
            "Environment variables passed to the provider process (for example `AWS_PROFILE`, "
            "`VAULT_ADDR`). The provider sees no other variables of dso's environment.",
            default=(),
        ),
        _BREAKER,
    ),
    extra=Field(
        "<setting>",
        FieldType.ANY,
        "Every other key is a setting of the provider type (address, region, mount, auth…), "
        "checked by the provider when it starts. `${ENV}` references are expanded; settings "
        "named like a credential (see below) are masked by `config show`.",
    ),
)

#: ``agent.webhook.rate_limit``: ``<requests>/<s|m|h>``.
RATE_PATTERN = r"[1-9][0-9]{0,8}/[smh]"

_AGENT_WEBHOOK = Field(
    "webhook",
    FieldType.SECTION,
    "An inbound HTTP endpoint (off by default) through which a caller asks the agent to check "
    "named secrets for new versions now, instead of at the next poll. It never carries a value: "
    "a forged call can at most cause one provider read (docs/agent.md#webhook).",
    fields=(
        Field(
            "enabled",
            FieldType.BOOL,
            "Start the webhook server with the agent. Needs `token` or `hmac_secret` (or both).",
            default=False,
        ),
        Field(
            "listen",
            FieldType.STRING,
            "`host:port` the server binds, and nothing else (`[::1]:9871` for IPv6). The "
            "server speaks plain HTTP: keep it on a loopback or private address, or put a TLS "
            "proxy in front of it.",
            default="127.0.0.1:9871",
        ),
        Field(
            "path",
            FieldType.STRING,
            "The URL path that accepts `POST`; any other path answers 404.",
            default="/hooks/secret-changed",
            pattern=r"/[A-Za-z0-9._~/-]{0,255}",
            pattern_doc="a URL path starting with '/' (letters, digits, '.', '_', '~', '-', '/')",
        ),
        Field(
            "token",
            FieldType.STRING,
            "Bearer token callers send as `Authorization: Bearer <token>`. A credential: write "
            "it as a `${VAR}` reference.",
            credential=True,
        ),
        Field(
            "hmac_secret",
            FieldType.STRING,
            "Key of the `X-DSO-Signature: sha256=<hex>` HMAC-SHA256 of the raw body callers "
            "send. A credential: write it as a `${VAR}` reference.",
            credential=True,
        ),
        Field(
            "rate_limit",
            FieldType.STRING,
            "Sustained rate of requests the server answers, as `<n>/s`, `<n>/m` or `<n>/h`; "
            "beyond it and `burst`, requests get 429.",
            default="10/s",
            pattern=RATE_PATTERN,
            pattern_doc="a rate such as 10/s, 60/m or 100/h",
        ),
        Field(
            "burst",
            FieldType.INT,
            "Requests answered at once above the sustained rate (the size of the token bucket).",
            default=20,
            minimum=1,
        ),
    ),
)

_AGENT_METRICS = Field(
    "metrics",
    FieldType.SECTION,
    "The agent's Prometheus metrics, always served by the socket's `metrics` action; here, "
    "optionally over TCP too (docs/agent.md#metrics).",
    fields=(
        Field(
            "listen",
            FieldType.STRING,
            "`host:port` where plain HTTP `GET /metrics` is served (`[::1]:9464` for IPv6). "
            "Absent: no TCP listener. Keep it on a loopback or private address.",
        ),
    ),
)

_AGENT = Field(
    "agent",
    FieldType.SECTION,
    "The long-running agent (`dso agent`, the `dso-agent` systemd service).",
    fields=(
        Field(
            "socket",
            FieldType.PATH,
            "Unix socket the agent listens on; `docker dso status` and `events` talk to the "
            "agent through it (docs/agent-api.md). Absent: `/run/dso/agent.sock` for the host "
            "agent, `agent.sock` in the dso home (`~/.dso/agent.sock`) for a local one.",
        ),
        Field(
            "cache",
            FieldType.SECTION,
            "The agent's memory of the last values it fetched, served only while a provider is "
            "unreachable (never written to disk; emptied by a restart).",
            fields=(
                Field(
                    "ttl",
                    FieldType.DURATION,
                    "How old a remembered value may be and still be served while its provider is "
                    "unreachable (providers are always asked first); `0s` disables the cache.",
                    default="1h",
                ),
                Field(
                    "max_size",
                    FieldType.SIZE,
                    "Upper bound of the cache; the least recently used entries are evicted "
                    "beyond it.",
                    default="500Mi",
                ),
            ),
        ),
        Field(
            "rotation",
            FieldType.SECTION,
            "How containers are rotated when a secret they use changes.",
            fields=(
                Field(
                    "strategy",
                    FieldType.STRING,
                    "`rolling`: start a new container, wait until it is healthy, swap, stop "
                    "the old one (no downtime); `restart`: restart in place (brief downtime); "
                    "`reload`: signal the running container to re-read its secrets; `none`: "
                    "record the change, touch nothing; `auto`: dso picks per service, preferring "
                    "a zero-downtime `rolling` swap.",
                    default="auto",
                    choices=("auto", "rolling", "restart", "reload", "none"),
                ),
                Field(
                    "timeout",
                    FieldType.DURATION,
                    "How long a rotation may take to reach a healthy new container before it "
                    "is treated as failed.",
                    default="30s",
                    minimum=0.001,
                ),
                Field(
                    "rollback_on_failure",
                    FieldType.BOOL,
                    "On failure, keep (or restore) the old container and remove the new one. "
                    "With `false` the failed state is left for an operator to inspect.",
                    default=True,
                ),
                Field(
                    "parallel",
                    FieldType.INT,
                    "Replicas of one service rotated at the same time, after the first has "
                    "rotated alone (a canary); the healthy serving count never drops below the "
                    "count before the rotation. A service's `dso.parallel` label and "
                    "`rotate --parallel` win over it; `1` rotates one after another.",
                    default=4,
                    minimum=1,
                    maximum=32,
                ),
                Field(
                    "drain_timeout",
                    FieldType.DURATION,
                    "`rolling`: before the old container leaves its networks, new connections "
                    "to it go to the new container and the established ones get this long to "
                    "finish (needs root and iptables on the Docker host; "
                    "[rotation.md](rotation.md#in-flight-requests)). `0s` leaves at once, "
                    "cutting a request in flight.",
                    default="10s",
                    minimum=0,
                ),
            ),
        ),
        Field(
            "watch",
            FieldType.SECTION,
            "How secret changes are noticed.",
            fields=(
                Field(
                    "polling_interval",
                    FieldType.DURATION,
                    "How often providers are asked for new secret versions when they cannot "
                    "push change notifications (a little jitter is added).",
                    default="5m",
                    minimum=1.0,
                ),
                Field(
                    "debounce_window",
                    FieldType.DURATION,
                    "Changes arriving within this window are coalesced, so a container with "
                    "several changed secrets rotates once; `0s` rotates on every change.",
                    default="5s",
                ),
            ),
        ),
        _AGENT_WEBHOOK,
        _AGENT_METRICS,
    ),
)

_LOGGING = Field(
    "logging",
    FieldType.SECTION,
    "Log messages of the agent (the CLI's stderr verbosity is set by `--log-level`).",
    fields=(
        Field(
            "level",
            FieldType.STRING,
            "Least severe level written.",
            default="info",
            choices=("debug", "info", "warning", "error"),
        ),
        Field(
            "format",
            FieldType.STRING,
            "`text` for people, `json` for log shippers (one object per line).",
            default="text",
            choices=("text", "json"),
        ),
        Field(
            "file",
            FieldType.PATH,
            "Also append log lines, with timestamps, to this file (e.g. "
            "`/var/log/dso/agent.log`; journald already keeps the agent's logs). Created "
            "0640 by the host agent, 0600 in local mode, its directory 0750/0700.",
        ),
        Field(
            "max_size",
            FieldType.SIZE,
            "When a line would grow `file` past this size, it is renamed to `<file>.1` (older "
            "copies shift up to `.<backups>`) and a new file is started.",
            default="10Mi",
            minimum=4096,
        ),
        Field(
            "backups",
            FieldType.INT,
            "Rotated copies of `file` kept (`<file>.1` … `<file>.<backups>`).",
            default=3,
            minimum=1,
        ),
    ),
)

_EXTENSIONS = Field(
    "extensions",
    FieldType.SECTION,
    "In-process extensions that observe, and may veto, rotations (docs/extension-hooks.md), "
    "and the built-in `audit` log and `webhook` notifier.",
    fields=(
        Field(
            "directory",
            FieldType.PATH,
            "Directory whose `*.py` files are loaded as extensions (for frozen installs, which "
            "cannot see other packages' entry points). Absent: `extensions` in the dso home "
            "(`~/.dso/extensions`, `/var/lib/dso/extensions`); `DSO_EXTENSIONS_DIR` overrides.",
        ),
        Field(
            "audit",
            FieldType.SECTION,
            "The built-in audit log: one JSON line per rotation event (who, what, when, why, "
            "outcome, versions, fingerprints, trace id; never secret values).",
            fields=(
                Field("enabled", FieldType.BOOL, "Write the audit log.", default=True),
                Field(
                    "path",
                    FieldType.PATH,
                    "The audit log file (mode 0600). Absent: `audit.jsonl` in the logs "
                    "directory (`~/.dso/logs`, `/var/log/dso`).",
                ),
                Field(
                    "max_size",
                    FieldType.SIZE,
                    "When a line would grow the file past this size, it is renamed to "
                    "`<path>.1` (older copies shift up to `.3`) and a new file is started.",
                    default="10Mi",
                    minimum=4096,
                ),
            ),
        ),
        Field(
            "webhook",
            FieldType.SECTION,
            "The built-in webhook notifier: an HMAC-SHA256-signed JSON POST per rotation "
            "event, sent from a background thread with retries.",
            fields=(
                Field(
                    "url",
                    FieldType.STRING,
                    "`http://` or `https://` URL that receives the POSTs; the notifier is off "
                    "without it. Logs show only its scheme, host and port.",
                ),
                Field(
                    "secret",
                    FieldType.STRING,
                    "Key of the `X-DSO-Signature: sha256=<hex>` HMAC of each body; required "
                    "with `url`. A credential: write it as a `${VAR}` reference.",
                    credential=True,
                ),
                Field(
                    "events",
                    FieldType.STRING,
                    "Which events are sent: `outcomes` (completed, failed, rolled back), "
                    "`failures` (failed, rolled back) or `all` (also planned, started and "
                    "swapped). Dry runs are never sent.",
                    default="outcomes",
                    choices=("outcomes", "failures", "all"),
                ),
                Field(
                    "timeout",
                    FieldType.DURATION,
                    "Deadline of each delivery attempt.",
                    default="5s",
                    minimum=0.001,
                ),
                Field(
                    "retries",
                    FieldType.INT,
                    "Further attempts after a connection error, timeout, 429 or 5xx, waiting "
                    "1 s, 2 s, 4 s… (at most 30 s) between them; other statuses are not retried.",
                    default=3,
                    minimum=0,
                ),
            ),
        ),
    ),
)

#: The whole schema; its root is the top level of the file.
SCHEMA = Field(
    "",
    FieldType.SECTION,
    "A dso configuration file.",
    fields=(
        Field(
            "version",
            FieldType.INT,
            "Format version of this file. This dso reads version `1`.",
            required=True,
        ),
        Field(
            "default_provider",
            FieldType.STRING,
            "Provider used by references that name none. Must be defined under `providers`, "
            "or be `local` (the embedded local vault, always available).",
            default="local",
        ),
        Field(
            "providers",
            FieldType.MAP,
            "Secret back ends by name. A provider named `local` of type `local` always exists, "
            "even when not listed.",
            item=_PROVIDER,
            key_pattern=PROVIDER_NAME_PATTERN,
        ),
        _AGENT,
        _LOGGING,
        _EXTENSIONS,
    ),
)

#: The config format version this dso reads.
SUPPORTED_VERSION = 1


def iter_fields(spec: Field = SCHEMA, prefix: str = "") -> Iterator[tuple[str, Field]]:
    """Every key under ``spec`` as ``(dotted path, field)``, depth first, in file order.

    Named entries appear as ``<name>`` and provider settings as ``<setting>``:
    ``providers.<name>.breaker.cooldown``, ``providers.<name>.<setting>``.
    """
    children = list(spec.fields)
    if spec.item is not None:
        children.append(spec.item)
    if spec.extra is not None:
        children.append(spec.extra)
    for child in children:
        dotted = f"{prefix}.{child.name}" if prefix else child.name
        yield dotted, child
        yield from iter_fields(child, dotted)


def lookup(dotted: str) -> Field:
    """The field at ``dotted`` (``agent.cache.ttl``, ``providers.<name>.timeout``)."""
    for path, spec in iter_fields():
        if path == dotted:
            return spec
    raise KeyError(dotted)


def convert_default(spec: Field) -> Any:
    """``spec.default`` as the model holds it (seconds, bytes, :class:`Path`, tuple)."""
    value = spec.default
    if value is None:
        return None
    if spec.type is FieldType.DURATION:
        return parse_duration(value)
    if spec.type is FieldType.SIZE:
        return parse_size(value)
    if spec.type is FieldType.PATH:
        return Path(value)
    if spec.type is FieldType.NAMES:
        return tuple(value)
    return value


def default(dotted: str) -> Any:
    """The converted default of the key at ``dotted``; the model's defaults come from here."""
    return convert_default(lookup(dotted))


def default_text(spec: Field) -> str:
    """The default as docs and ``config show`` spell it (``1h``, ``true``, ``[]``, ``none``)."""
    value = spec.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return str(value)

"""Which variables of a compose project hold secrets: the rules ``docker dso migrate`` applies.

A variable is proposed when its *name* or its *value* matches a rule, and its value is none of
the things that are never secrets (empty, a reference already, a boolean, a number or a port).
Every match carries the rule and a sentence saying why, so the plan can explain each proposal
without ever showing the value. The rules, with examples, are listed in docs/compose.md.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from kernel.reference import is_reference

#: Substrings of a variable name (upper-cased) that make it a secret.
NAME_SUBSTRINGS = (
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "ENCRYPTION_KEY",
    "SIGNING_KEY",
    "CREDENTIAL",
)
#: Whole ``_``-separated segments that make a name a secret (``DB_PASS``, ``BASIC_AUTH``).
NAME_SEGMENTS = frozenset({"PASS", "PWD", "AUTH", "AUTHORIZATION"})
#: Names that contain a segment above but are well-known non-secrets.
NAME_EXCEPTIONS = frozenset({"PWD", "OLDPWD"})
#: A last segment that says the variable *describes* a secret rather than holding it:
#: ``POSTGRES_PASSWORD_FILE`` is a path, ``TOKEN_TTL`` a duration, ``SECRET_NAME`` a name.
DESCRIPTOR_SUFFIXES = frozenset(
    {
        "FILE",
        "PATH",
        "DIR",
        "URL",
        "URI",
        "ENDPOINT",
        "HOST",
        "PORT",
        "NAME",
        "USER",
        "USERNAME",
        "ID",
        "TYPE",
        "MODE",
        "METHOD",
        "ENABLED",
        "DISABLED",
        "TTL",
        "TIMEOUT",
        "EXPIRY",
        "LENGTH",
        "ALGORITHM",
        "ISSUER",
    }
)

_BOOLEANS = frozenset({"true", "false", "yes", "no", "on", "off", "y", "n"})
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_PORT = re.compile(
    r"(\d{1,3}(\.\d{1,3}){3}:)?\d{1,5}(-\d{1,5})?(:\d{1,5}(-\d{1,5})?)?(/(tcp|udp))?"
)
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@\S")
_DSN_CREDENTIALS = re.compile(r"[^/\s:@]+:[^/\s@]+@\S")
_PEM_PRIVATE = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
#: Well-known token formats: (what it looks like, pattern matched against the whole value).
TOKEN_FORMATS = (
    ("an AWS access key id", re.compile(r"(AKIA|ASIA|AGPA|AROA)[A-Z0-9]{16}")),
    ("a GitHub token", re.compile(r"(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("a GitLab token", re.compile(r"glpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Stripe secret key", re.compile(r"(sk|rk)_(live|test)_[A-Za-z0-9]{16,}")),
    ("a Google API key", re.compile(r"AIza[0-9A-Za-z_-]{35}")),
)
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9+/=_-]+")
_HEX = re.compile(r"[0-9a-fA-F]+")
#: Shortest value the entropy rule looks at.
MIN_ENTROPY_LENGTH = 20


@dataclass(frozen=True, slots=True)
class Match:
    """Why a variable is proposed: ``rule`` is a stable id, ``why`` a sentence without the value."""

    rule: str
    why: str


def name_match(variable: str) -> Match | None:
    """The name rule ``variable`` matches, or None."""
    upper = variable.upper()
    if upper in NAME_EXCEPTIONS:
        return None
    segments = [s for s in upper.split("_") if s]
    if segments and segments[-1] in DESCRIPTOR_SUFFIXES:
        return None
    for word in NAME_SUBSTRINGS:
        if word in upper:
            return Match("name", f"name contains {word}")
    for segment in segments:
        if segment in NAME_SEGMENTS or (segment.endswith("AUTH") and len(segment) > 4):
            return Match("name", f"name contains {segment}")
    return None


def never_secret(value: str) -> str | None:
    """Why ``value`` is never proposed whatever its name (None: it may be a secret).

    Empty values, references (``dso://``, ``dsofile://``), booleans, numbers and ports: a
    numeric password must be moved by hand (``--include``).
    """
    text = value.strip()
    if not text:
        return "empty value"
    if is_reference(text):
        return "already a reference"
    if text.lower() in _BOOLEANS:
        return "a boolean"
    if _NUMBER.fullmatch(text):
        return "a number"
    if _PORT.fullmatch(text):
        return "a port"
    return None


def value_match(variable: str, value: str) -> Match | None:
    """The value rule ``value`` matches, or None. The value itself never appears in the result."""
    text = value.strip()
    if _PEM_PRIVATE.search(text):
        return Match("pem-private-key", "value is a PEM private key")
    if _URL_CREDENTIALS.match(text) or (
        variable.upper().endswith("DSN") and _DSN_CREDENTIALS.match(text)
    ):
        return Match("url-credentials", "value is a URL with a password (user:pass@)")
    for what, pattern in TOKEN_FORMATS:
        if pattern.fullmatch(text):
            return Match("token-format", f"value looks like {what}")
    if _JWT.fullmatch(text):
        return Match("jwt", "value looks like a JWT")
    if high_entropy(text):
        return Match("high-entropy", "value is a long random-looking string")
    return None


def high_entropy(text: str) -> bool:
    """True for random-looking tokens: at least 20 characters of ``[A-Za-z0-9+/=_-]`` with a
    letter and a digit, and a Shannon entropy per character near that of random text.

    Hex strings need 32 characters and 3.0 bits (random hex has at most 4); other tokens need
    ``min(4.5, max(3.5, 0.8 * log2(length)))`` bits, which random base64 of any length clears
    and names, versions, UUIDs and snake_case words do not.
    """
    if len(text) < MIN_ENTROPY_LENGTH or not _TOKEN_CHARS.fullmatch(text):
        return False
    if not (any(c.isdigit() for c in text) and any(c.isalpha() for c in text)):
        return False
    bits = entropy(text)
    if _HEX.fullmatch(text):
        return len(text) >= 32 and bits >= 3.0
    return bits >= min(4.5, max(3.5, 0.8 * math.log2(len(text))))


def entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in Counter(text).values())


def classify(variable: str, value: str) -> Match | str:
    """Decide one variable: a :class:`Match` to propose it, else why it is not (a reason).

    The reason is ``""`` when nothing matched at all (not worth mentioning in a plan).
    """
    reason = never_secret(value)
    if reason is not None:
        return reason
    return name_match(variable) or value_match(variable, value) or ""

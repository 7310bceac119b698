"""``dso-provider-<name> --check-settings``: check dso.yaml settings without connecting.

``docker dso config validate`` runs it for every configured provider. The settings arrive on
stdin as one msgpack map (they may hold credentials: never on the command line); the answer is
one JSON line on stdout:

    {"ok": true}
    {"ok": false, "code": "invalid_request", "message": "unknown setting 'adress' …",
     "setting": "adress"}

Exit status 0 when the check ran (whatever its answer), 2 when the input is not a settings map.
No handshake and no magic cookie: nothing is fetched, and no back end is contacted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

import msgpack

from kernel.protocol.codes import ErrorCode, clean_message
from kernel.protocol.framing import MAX_FRAME_SIZE
from providers.sdk.errors import GENERIC_INTERNAL_MESSAGE, InvalidRequest, ProviderFault
from providers.sdk.provider import Provider

#: Largest settings document read from stdin: what one ``configure`` frame may carry.
MAX_SETTINGS_BYTES = MAX_FRAME_SIZE
EXIT_OK = 0
EXIT_USAGE = 2


def check_settings_main(
    provider_cls: type[Provider], environ: Mapping[str, str], stdin: IO[bytes], stdout: IO[str]
) -> int:
    """Read the settings from ``stdin``, check them, write the answer to ``stdout``."""
    raw = stdin.read(MAX_SETTINGS_BYTES + 1)
    try:
        if len(raw) > MAX_SETTINGS_BYTES:
            raise ValueError(f"more than {MAX_SETTINGS_BYTES} bytes")
        settings = msgpack.unpackb(raw, raw=False, strict_map_key=False) if raw else {}
        if not isinstance(settings, dict):
            raise ValueError("not a map")
    except ValueError as exc:
        # msgpack's own errors are ValueError subclasses; their text never quotes the input.
        stdout.write(json.dumps({"ok": False, "code": "invalid_request", "message": f"{exc}"}))
        stdout.write("\n")
        return EXIT_USAGE
    stdout.write(json.dumps(answer(provider_cls, settings, environ)) + "\n")
    return EXIT_OK


def answer(
    provider_cls: type[Provider], settings: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """The JSON answer for ``settings``."""
    try:
        provider_cls.check_settings(settings, environ)
    except ProviderFault as exc:
        wire = exc.to_wire()
        doc: dict[str, Any] = {"ok": False, "code": wire.code.value, "message": wire.message}
        if isinstance(exc, InvalidRequest) and exc.setting:
            doc["setting"] = exc.setting
        return doc
    except Exception:  # its text may quote a credential: never shown
        return {
            "ok": False,
            "code": ErrorCode.INTERNAL.value,
            "message": clean_message(GENERIC_INTERNAL_MESSAGE),
        }
    return {"ok": True}

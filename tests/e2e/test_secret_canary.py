"""The canary: a known secret value never leaves the vault except where the user asked for it.

Runs the installed `dso` entry point as real processes at debug log level and checks every
stdout, stderr, the files under DSO_HOME (the vault is encrypted) and the argv of the processes.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

DSO = str(Path(sys.executable).parent / "dso")


def test_canary_never_leaks(tmp_path: Path) -> None:
    canary = "CANARY-" + secrets.token_hex(16)
    home = tmp_path / "dso-home"
    env = {**os.environ, "DSO_HOME": str(home), "DSO_LOG_LEVEL": "debug", "HOME": str(tmp_path)}
    env.pop("DSO_VAULT_PASSPHRASE", None)
    envfile = tmp_path / "app.env"
    envfile.write_text(f"export API_TOKEN='{canary}-env'\n# comment\nOTHER=plain-value\n")
    envfile.chmod(0o600)

    outputs: list[str] = []

    def dso(*args: str, stdin: str | None = None, ok: bool = True) -> str:
        done = subprocess.run(
            [DSO, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
        )
        outputs.append(done.stderr)
        if ok:
            assert done.returncode == 0, done.stderr
        return done.stdout

    dso("init")
    outputs.append(dso("secret", "set", "app/db_password", stdin=canary + "\n"))
    outputs.append(dso("secret", "import", str(envfile), "--prefix", "app/"))
    outputs.append(dso("secret", "list"))
    listing = dso("secret", "list", "--json")
    outputs.append(listing)
    outputs.append(dso("secret", "get", "app/db_password", "--json"))
    outputs.append(dso("config", "show"))
    outputs.append(dso("config", "show", "--json"))
    outputs.append(dso("config", "validate", "--json"))
    # Wrong-length or invalid input must not echo the value either.
    outputs.append(dso("secret", "set", "../bad", stdin=canary, ok=False))
    # A value typed on the command line is refused, and the refusal does not repeat it.
    outputs.append(dso("secret", "set", "app/x", canary, stdin=canary, ok=False))
    assert "app/x" not in dso("secret", "list")

    for text in outputs:
        assert canary not in text

    # The value comes back only to a pipe.
    assert dso("secret", "get", "app/db_password") == canary
    assert {item["name"] for item in json.loads(listing)} == {
        "app/API_TOKEN",
        "app/OTHER",
        "app/db_password",
    }

    for path in home.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path

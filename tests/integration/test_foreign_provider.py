"""A provider in another language: examples/providers/node-env (Node.js), written from
docs/provider-protocol.md alone, passes the conformance kit unchanged and serves a real
`docker dso up`.

Node.js, npm and the example's node_modules come from scripts/dev-env (`npm ci` with the
committed package-lock.json); each test bundles the provider from source into its tmp_path
(scripts/bundle.js: one executable with @msgpack/msgpack inlined), as an author would ship it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RunDso
from tests.integration.compose_support import IMAGE, ArgvWatcher, ComposeProject, project

pytestmark = pytest.mark.integration
__all__ = ["project"]

EXAMPLE = Path(__file__).parents[2] / "examples" / "providers" / "node-env"
SOURCE = EXAMPLE / "bin" / "dso-provider-node-env"


def bundle(out_dir: Path) -> Path:
    """Build the single-file provider from source into ``out_dir``."""
    node = shutil.which("node")
    if node is None or not (EXAMPLE / "node_modules" / "@msgpack" / "msgpack").is_dir():
        pytest.fail("Node.js or the example's node_modules is missing: run `make dev-env`")
    out = out_dir / "dso-provider-node-env"
    done = subprocess.run(
        [node, "scripts/bundle.js", str(out)], cwd=EXAMPLE, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return out


def secrets_dir(root: Path, large: bytes) -> Path:
    tree = root / "secrets"
    (tree / "ci").mkdir(parents=True)
    (tree / "ci" / "db").write_text("pw-1")
    (tree / "ci" / "json").write_text('{"db": {"password": "p-2", "port": 5432}}')
    (tree / "ci" / "large").write_bytes(large)
    return tree


@pytest.mark.parametrize("form", ["bundled", "source"])
def test_the_node_provider_passes_the_conformance_kit(
    form: str, tmp_path: Path, run_dso: RunDso
) -> None:
    program = bundle(tmp_path) if form == "bundled" else SOURCE
    large = os.urandom(1 << 20)
    tree = secrets_dir(tmp_path, large)
    rotate = tmp_path / "rotate.sh"
    rotate.write_text(f'#!/bin/sh\nprintf "pw-$$" > "{tree}/ci/db"\n')
    rotate.chmod(0o755)
    fixture = tmp_path / "fixture.json"
    fixture.write_text(
        json.dumps(
            {
                "settings": {"dir": str(tree)},
                "secrets": [
                    {"path": "ci/db", "value": "pw-1"},
                    {"path": "ci/json", "field": "db.password", "value": "p-2"},
                    {"path": "ci/json", "field": "db.port", "value": "5432"},
                    {
                        "path": "ci/large",
                        "sha256": hashlib.sha256(large).hexdigest(),
                        "size": len(large),
                    },
                ],
                "missing": "ci/none",
                "change": {"path": "ci/db", "command": ["./rotate.sh"], "timeout": 10},
            }
        )
    )
    result = run_dso("providers", "test", str(program), "--fixture", str(fixture), "--json")
    report = json.loads(result.stdout)
    failed = [c for c in report["checks"] if c["status"] == "failed"]
    assert result.exit_code == 0 and report["passed"] is True, failed
    status = {c["name"]: c["status"] for c in report["checks"]}
    # Everything the provider announces was exercised, including the watch's notification.
    for check in ("get", "versions", "list", "large-value", "pipelining", "watch", "shutdown"):
        assert status[check] == "passed", check
    assert status["unadvertised-methods"] == "skipped"  # it announces every capability
    assert "pw-1" not in result.output and "p-2" not in result.output


def test_a_compose_container_gets_its_secrets_from_the_node_provider(
    project: ComposeProject, tmp_path: Path
) -> None:
    env_canary = "CANARY-node-env-" + secrets.token_hex(12)
    file_canary = "CANARY-node-file-" + secrets.token_hex(12)
    tree = tmp_path / "node-secrets"
    (tree / "app").mkdir(parents=True)
    (tree / "app" / "token").write_text(env_canary)
    (tree / "app" / "db.json").write_text(json.dumps({"db": {"password": file_canary}}))

    # Installed by hand, as docs/providers.md says: the plugins directory and its SHA256SUMS.
    plugins = Path(project.env["DSO_HOME"]) / "plugins"
    plugins.mkdir(exist_ok=True)
    program = bundle(plugins)
    digest = hashlib.sha256(program.read_bytes()).hexdigest()
    (plugins / "SHA256SUMS").write_text(f"{digest}  dso-provider-node-env\n")
    config = Path(project.env["DSO_HOME"]) / "config.yaml"
    config.write_text(f"version: 1\nproviders:\n  files:\n    type: node-env\n    dir: {tree}\n")
    config.chmod(0o600)
    listed = project.dso("providers", "list", "--json")
    assert "node-env" in listed.stdout

    project.write(
        "compose.yaml",
        f"""
        services:
          app:
            image: {IMAGE}
            command: ["sh", "-c", "sleep 600"]
            stop_grace_period: 1s
            environment:
              TOKEN: dso://files:app/token
              DB_PASSWORD_FILE: dsofile://files:app/db.json#db.password
        """,
    )
    with ArgvWatcher(env_canary, file_canary) as argv:
        project.dso("up", "-d")
    assert argv.samples > 0 and argv.hits == [], "a secret value reached a command line"
    assert project.exec("app", "sh", "-c", 'printf %s "$TOKEN"') == env_canary
    assert project.exec("app", "sh", "-c", 'cat "$DB_PASSWORD_FILE"') == file_canary
    assert file_canary not in json.dumps(project.inspect("app"))
    project.dso("down")
    project.assert_no_output_contains(env_canary, file_canary)

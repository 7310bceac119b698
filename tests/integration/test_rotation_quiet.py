"""A rotation that succeeds says so on stdout and nothing on stderr: no provider warnings
(restarts, exits) from the provider processes the command started and stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.rotation_support import Cli, Scope, cli, scope
from tests.integration.servers import OpenBao

pytestmark = pytest.mark.integration
__all__ = ["cli", "scope"]


def test_successful_rotations_print_no_provider_warnings(
    scope: Scope, cli: Cli, tmp_path: Path
) -> None:
    bao = OpenBao(tmp_path / "bao")
    try:
        config = cli.home / "config.yaml"
        config.write_text(
            f"version: 1\nproviders:\n  vault:\n    type: vault\n"
            f"    address: {bao.address}\n    token: {bao.root_token}\n"
        )
        os.chmod(config, 0o600)
        bao.write("app/msg", {"value": "v1"})
        cli.set_secret("app/key", "k1")
        network = scope.network("net")
        refs = {"MSG": "dso://vault:app/msg#value", "KEY": "dso://app/key"}
        labels = {
            "dso.refs": json.dumps(refs),
            "dso.versions": json.dumps({"MSG": "vault:1", "KEY": "local:1"}),
        }
        web = scope.web("web", network, msg="v1", labels=labels)
        other = scope.web("other", network, msg="v1", labels=labels)

        for version in (2, 3):
            bao.write("app/msg", {"value": f"v{version}"})
            cli.set_secret("app/key", f"k{version}")
            done = cli.run("rotate", web.name, other.name)
            assert done.returncode == 0, done.stderr
            assert done.stdout.count("rotated with rolling") == 2
            assert "restart" not in done.stderr and "provider" not in done.stderr
            assert done.stderr == ""
    finally:
        bao.stop()

"""``sudo docker dso providers install|remove --mode agent`` on a real host (a source test host):
the agent's plugins directory gets root-owned 0755 directories and programs, 0644 data files
and SHA256SUMS; a user who is not root is refused with nothing changed; remove restores the
directory. One scenario, one function (the steps build on each other).
"""

from __future__ import annotations

import json

import pytest

from tests.systemd_host import TestHost, source_test_host_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PLUGINS = "/var/lib/dso/plugins"
USER = "bob"
#: A bundle: the echo fake provider of this checkout (every python3 of the host imports it).
BUNDLE = """
set -e
mkdir -p /root/src/dso-provider-echo
cat > /root/src/dso-provider-echo/dso-provider-echo <<'EOF'
#!/bin/sh
exec python3 -m tests.fakes.echo_provider "$@"
EOF
chmod 700 /root/src/dso-provider-echo/dso-provider-echo
echo data > /root/src/dso-provider-echo/lib.dat
chmod 600 /root/src/dso-provider-echo/lib.dat
cd /root/src && sha256sum dso-provider-echo/dso-provider-echo dso-provider-echo/lib.dat > SHA256SUMS
cp -r /root/src /tmp/src && chmod -R a+rX /tmp/src
"""


def stat(host: TestHost, path: str) -> str:
    return host.exec("stat", "-c", "%a %U:%G", path).stdout.strip()


def test_install_into_the_agents_plugins_directory_as_root(source_test_host: TestHost) -> None:
    host = source_test_host
    host.sh(BUNDLE)
    host.sh(f"id {USER} >/dev/null 2>&1 || useradd --create-home {USER}")

    done = host.exec(
        "docker", "dso", "providers", "install", "--mode", "agent", "--json",
        "/root/src/dso-provider-echo", check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["path"] == f"{PLUGINS}/dso-provider-echo" and doc["version"] == "1.0.0"
    assert doc["source"]["checksums"] == "SHA256SUMS"
    assert stat(host, PLUGINS) == "755 root:root"
    assert stat(host, f"{PLUGINS}/dso-provider-echo") == "755 root:root"
    assert stat(host, f"{PLUGINS}/dso-provider-echo/dso-provider-echo") == "755 root:root"
    assert stat(host, f"{PLUGINS}/dso-provider-echo/lib.dat") == "644 root:root"
    assert stat(host, f"{PLUGINS}/SHA256SUMS") == "644 root:root"
    # Only the executable's line, as the kernel verifies it; sha256sum agrees with it.
    manifest = host.exec("cat", f"{PLUGINS}/SHA256SUMS").stdout
    assert manifest.endswith("  dso-provider-echo/dso-provider-echo\n")
    assert len(manifest.splitlines()) == 1
    host.sh(f"cd {PLUGINS} && sha256sum --check --quiet SHA256SUMS")
    listed = host.exec("env", f"DSO_PLUGINS_DIR={PLUGINS}", "dso", "providers", "list", "--json")
    echo = {p["name"]: p for p in json.loads(listed.stdout)["providers"]}["echo"]
    assert echo["verified"] is True and echo["origin"] == "plugins-dir"

    # Someone who is not root may not change what the agent runs.
    before = host.sh(f"ls -lR {PLUGINS}; cat {PLUGINS}/SHA256SUMS").stdout
    refused = host.exec(
        "docker", "dso", "providers", "install", "--mode", "agent", "--force",
        "/tmp/src/dso-provider-echo", user=USER, check=False,
    )  # fmt: skip
    assert refused.returncode == 8, refused.stderr
    assert f"cannot write the plugins directory {PLUGINS}: permission denied" in refused.stderr
    assert "run the command with sudo" in refused.stderr
    removed_by_user = host.exec(
        "docker", "dso", "providers", "remove", "--mode", "agent", "echo", user=USER, check=False
    )
    assert removed_by_user.returncode == 8, removed_by_user.stderr
    assert host.sh(f"ls -lR {PLUGINS}; cat {PLUGINS}/SHA256SUMS").stdout == before

    removed = host.exec("docker", "dso", "providers", "remove", "--mode", "agent", "echo")
    assert "SHA256SUMS removed (empty)" in removed.stdout
    assert host.exec("ls", "-A", PLUGINS).stdout == ""

"""`docker dso …` through the real docker CLI and the installed entry points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
SOCKET = "unix:///var/run/docker.sock"


@pytest.fixture
def docker_env(tmp_path: Path) -> dict[str, str]:
    """A DOCKER_CONFIG of our own with dso installed into it by `dso install --user`."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is missing: run scripts/dev-env")
    env = {
        **os.environ,
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "DSO_HOME": str(tmp_path / "dso-home"),
    }
    env.pop("DOCKER_HOST", None)
    done = subprocess.run(
        [BIN / "dso", "install", "--user", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    (entry,) = json.loads(done.stdout)
    assert entry["action"] == "linked"
    assert Path(entry["path"]).is_symlink()
    return env


def docker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=30)


def test_metadata_imports_nothing_heavy() -> None:
    code = (
        "import sys, runpy; sys.argv=['docker-dso','docker-cli-plugin-metadata'];\n"
        "from kernel.cli import docker_plugin\n"
        "try:\n    docker_plugin.main()\nexcept SystemExit:\n    pass\n"
        "heavy = {'click','docker','yaml','rich','cryptography','pluggy','msgpack','requests'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    meta = json.loads(done.stdout)
    assert meta["SchemaVersion"] == "0.1.0"
    assert done.stderr.strip() == "[]"


def test_docker_lists_and_runs_the_plugin(docker_env: dict[str, str]) -> None:
    listing = docker(docker_env, "--help")
    assert listing.returncode == 0
    assert any(line.split()[:1] in (["dso"], ["dso*"]) for line in listing.stdout.splitlines())

    done = docker(docker_env, "dso", "version", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["docker"]["reachable"] is True
    assert doc["docker"]["api_version"]
    assert doc["version"] and doc["python"]


def test_docker_help_dso_shows_dso_help(docker_env: dict[str, str]) -> None:
    done = docker(docker_env, "help", "dso")
    assert done.returncode == 0, done.stderr
    assert "Usage: docker dso" in done.stdout
    assert "secret" in done.stdout


def test_unreachable_daemon_is_said_clearly(docker_env: dict[str, str], tmp_path: Path) -> None:
    env = {**docker_env, "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    done = subprocess.run(
        [BIN / "docker-dso", "dso", "version"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 6
    assert "docker:  unreachable: Docker daemon unreachable at unix://" in done.stdout
    assert "Traceback" not in done.stderr


def test_docker_global_flags_and_contexts_choose_the_daemon(
    docker_env: dict[str, str], tmp_path: Path
) -> None:
    """`docker -H …`/`--context …` and `docker context use` reach dso as docker resolves them."""
    made = docker(docker_env, "context", "create", "dso-e2e-ctx", "--docker", "host=" + SOCKET)
    assert made.returncode == 0, made.stderr

    def version(*args: str) -> dict[str, object]:
        done = docker(docker_env, *args, "dso", "version", "--json")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)["docker"]
        assert isinstance(doc, dict) and doc["reachable"] is True
        return doc

    assert version("--context", "dso-e2e-ctx")["context"] == "dso-e2e-ctx"
    assert version("-H", SOCKET) == {**version(), "host": SOCKET}
    # the compose dso runs gets the same daemon
    listed = docker(
        docker_env, "--context", "dso-e2e-ctx", "dso", "compose", "ls", "--format", "json"
    )
    assert listed.returncode == 0, listed.stderr
    assert docker(docker_env, "context", "use", "dso-e2e-ctx").returncode == 0
    assert version()["context"] == "dso-e2e-ctx"

    nowhere = f"unix://{tmp_path}/nothing.sock"
    done = docker(docker_env, "-H", nowhere, "dso", "version")
    assert done.returncode == 6
    assert f"unreachable at {nowhere}" in done.stdout
    refused = docker(docker_env, "--tlsverify", "-H", SOCKET, "dso", "version")
    assert refused.returncode == 2
    assert "does not connect to the Docker daemon over TLS" in refused.stderr


def test_uninstall_removes_the_link(docker_env: dict[str, str]) -> None:
    done = subprocess.run(
        [BIN / "dso", "install", "--user", "--uninstall", "--json"],
        env=docker_env,
        capture_output=True,
        text=True,
        check=True,
    )
    (entry,) = json.loads(done.stdout)
    assert entry["action"] == "removed"
    assert not Path(entry["path"]).exists()


def test_docker_closing_the_plugin_socket_interrupts_like_ctrl_c(tmp_path: Path) -> None:
    """Without a TTY docker does not forward Ctrl-C: it closes DOCKER_CLI_PLUGIN_SOCKET."""
    import socket
    import time

    env = {**os.environ, "DSO_HOME": str(tmp_path / "dso-home")}
    subprocess.run([BIN / "dso", "init"], env=env, check=True, capture_output=True)
    path = str(tmp_path / "plugin.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(20)
    env["DOCKER_CLI_PLUGIN_SOCKET"] = path
    # `secret set` reads its value from stdin, which we keep open: it blocks until interrupted.
    proc = subprocess.Popen(
        [BIN / "docker-dso", "dso", "secret", "set", "app/x"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        conn, _ = server.accept()
        time.sleep(1)  # let it reach the blocking read, as a user's Ctrl-C would
        conn.close()
        # wait() rather than communicate(): closing stdin would end the read with EOF (an empty
        # value) and race the interrupt.
        proc.wait(timeout=20)
        _, err = proc.communicate()  # it has exited: this only collects and closes the pipes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.close()
    assert proc.returncode == 130
    assert "Interrupted." in err
    assert "Traceback" not in err
    listing = subprocess.run(
        [BIN / "dso", "secret", "list", "--json"], env=env, capture_output=True, text=True
    )
    assert json.loads(listing.stdout) == []

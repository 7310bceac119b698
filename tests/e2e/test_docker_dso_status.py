"""`docker dso status --json` end to end: through the real docker CLI, and what the plugin
process imports for it (issue 11: the whole command within 150 ms; click and the configuration
loader alone would take half of that)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.agent.daemon import Agent
from kernel.config import agent_socket
from tests.status_schema import validate_status
from tests.unit.status_fixtures import FakeHost, make_agent, provider

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
#: Modules `status --json` must not import: click, the logging setup, the configuration's
#: parser, schema and model, and every heavy dependency.
NOT_IMPORTED = {
    "click",
    "logging",
    "yaml",
    "rich",
    "docker",
    "cryptography",
    "pluggy",
    "msgpack",
    "requests",
    "h11",
    "prometheus_client",
    "kernel.config.model",
    "kernel.config.schema",
    "kernel.config.validate",
    "kernel.runtime",
}


@pytest.fixture
def agent_home(tmp_path: Path) -> Iterator[tuple[Path, Agent]]:
    """A dso home (made by `dso init`, configuration file included) whose agent answers on its
    socket from this process."""
    from kernel.agent.api.server import ApiServer

    home = tmp_path / "dso-home"
    env = {**os.environ, "DSO_HOME": str(home)}
    subprocess.run([BIN / "dso", "init"], env=env, check=True, capture_output=True)
    agent = make_agent(home, host=FakeHost({"local": provider("local")}))
    server = ApiServer.for_agent(agent)
    agent._api = server
    server.start()
    try:
        yield home, agent
    finally:
        server.stop()
        agent.bus.close()


def status_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSO_")}
    return {**env, "DSO_HOME": str(home)}


def test_status_json_imports_neither_click_nor_the_configuration_model(
    agent_home: tuple[Path, Agent],
) -> None:
    home, _ = agent_home
    # A configuration changed less than SETTLE seconds ago is not recorded yet.
    changed = (home / "config.yaml").stat().st_ctime
    time.sleep(max(0.0, changed + agent_socket.SETTLE + 0.1 - time.time()))
    probe = (
        "import sys\n"
        "from kernel.cli import docker_plugin\n"
        "sys.argv = ['docker-dso', 'dso', 'status', '--json']\n"
        "try:\n    docker_plugin.main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "import json\n"
        "print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)\n"
    )
    runs = []
    for _ in range(
        2
    ):  # the configuration is loaded the first time only (kernel.config.agent_socket)
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env=status_env(home),
            capture_output=True,
            text=True,
            check=True,
        )
        code, modules = json.loads(done.stderr.strip().splitlines()[-1])
        runs.append((code, set(modules), done.stdout))
    (first_code, first, _), (code, modules, out) = runs
    assert first_code == code == 0
    assert json.loads(out)["source"] == "agent"
    assert "click" in first  # no record yet: the full CLI loaded the configuration
    assert sorted(NOT_IMPORTED & {*modules, *(m.split(".")[0] for m in modules)}) == []


def test_the_metadata_call_imports_neither_json_nor_typing() -> None:
    # docker runs it before every `docker dso …`: each of these is milliseconds of each call.
    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "sys.argv = ['docker-dso', 'docker-cli-plugin-metadata']\n"
        "from kernel.cli import docker_plugin\n"
        "try:\n    docker_plugin.main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(set(sys.modules) - before)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["SchemaVersion"] == "0.1.0"
    loaded = done.stderr.split()
    assert sorted(m for m in loaded if not m.startswith(("kernel", "__future__"))) == []


def test_docker_dso_status_json_prints_the_agents_document(
    agent_home: tuple[Path, Agent], tmp_path: Path
) -> None:
    home, agent = agent_home
    env = {**status_env(home), "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    env.pop("DOCKER_HOST", None)
    subprocess.run(
        [BIN / "dso", "install", "--user", "--json"], env=env, capture_output=True, check=True
    )

    done = subprocess.run(
        ["docker", "dso", "status", "--json"], env=env, capture_output=True, text=True, timeout=30
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    doc = json.loads(done.stdout)
    validate_status(doc)
    assert doc["source"] == "agent"
    assert doc["runtime"]["socket"] == str(agent.api_path)

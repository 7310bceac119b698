"""``status``'s ``swarm`` section: one look at the swarm (kernel.agent.swarm_services.swarm_scan)
against a fake Docker API, the section the agent's last look gives (kernel.agent.status_doc), the
offline document asking Docker once, and the text lines (kernel.cli.status_output)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kernel.agent.status_doc import live_status, offline_status, swarm_doc
from kernel.agent.swarm_services import SwarmScan, swarm_scan
from kernel.cli.status_output import render
from kernel.containers.swarm import SwarmNode
from kernel.errors import DockerUnavailableError
from kernel.paths import local_layout
from tests.status_schema import validate_status
from tests.unit.status_fixtures import make_agent, rotation

SITE = "shop_site_0123456789"
DB = "shop_db_abcdefabcd"


def _secret(name: str, ref: str, version: str) -> dict[str, Any]:
    labels = {
        "dso.managed": "true",
        "dso.stack": "shop",
        "dso.secret": name.rsplit("_", 1)[0],
        "dso.reference": ref,
        "dso.version": version,
    }
    return {"ID": f"id-{name}", "CreatedAt": "2026-12-01", "Spec": {"Name": name, "Labels": labels}}


def _service(
    sid: str, name: str, secrets: dict[str, str], *, update: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ID": sid * 25,
        "Version": {"Index": 7},
        "Spec": {
            "Name": name,
            "Labels": {"com.docker.stack.namespace": "shop"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "busybox",
                    "Secrets": [
                        {"SecretName": secret, "File": {"Name": target, "Mode": 0o400}}
                        for target, secret in secrets.items()
                    ],
                }
            },
        },
    }
    if update is not None:
        doc["UpdateStatus"] = update
    return doc


class FakeApi:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stored = [
            _secret(SITE, "dsofile://shop/site", "local:2"),
            _secret(DB, "dsofile://shop/db", "local:5"),
        ]
        self.service_list = [
            _service(
                "a",
                "shop_web",
                {"/run/secrets/site": SITE, "/run/secrets/db": DB},
                update={
                    "State": "updating",
                    "StartedAt": "2026-12-02T05:00:00Z",
                    "Message": "update in progress",
                },
            ),
            _service("b", "shop_api", {"/run/secrets/db": DB}),
            _service("c", "shop_plain", {"/run/secrets/other": "not_ours"}),
        ]

    def secrets(self, filters: Any = None) -> list[dict[str, Any]]:
        self.calls.append("secrets")
        return self.stored

    def services(self, filters: Any = None) -> list[dict[str, Any]]:
        self.calls.append("services")
        return self.service_list


class FakeDocker:
    def __init__(self, *, state: str = "active", manager: bool = True) -> None:
        self.api = FakeApi()
        self.swarm = {
            "LocalNodeState": state,
            "ControlAvailable": manager,
            "NodeID": "node0123456789",
        }
        self.closed = False

    def info(self) -> dict[str, Any]:
        self.api.calls.append("info")
        return {"Swarm": self.swarm}

    def close(self) -> None:
        self.closed = True


def test_a_managers_scan_holds_dsos_services_with_their_update_state() -> None:
    client = FakeDocker()

    scan = swarm_scan(client)

    assert client.api.calls == ["info", "secrets", "services"]
    assert scan.node is not None and scan.node.manager
    assert [s.name for s in scan.services] == ["shop_api", "shop_web"]  # by name, only dso's
    assert [m.target.lock_key for m in scan.managed] == ["swarm-shop_api", "swarm-shop_web"]
    web = scan.managed[1]
    assert web.references == {
        "/run/secrets/site": "dsofile://shop/site",
        "/run/secrets/db": "dsofile://shop/db",
    }
    assert web.versions["/run/secrets/site"] == "local:2"


def test_off_a_manager_the_scan_asks_only_the_role_and_docker_away_is_unknown() -> None:
    worker = FakeDocker(manager=False)
    assert swarm_scan(worker).services == ()
    assert worker.api.calls == ["info"]

    class Away(FakeDocker):
        def info(self) -> dict[str, Any]:
            raise DockerUnavailableError("the Docker daemon does not answer")

    scan = swarm_scan(Away())
    assert scan.node is None and scan.error is not None and "does not answer" in scan.error


def test_the_live_document_lists_the_services_versions_updates_and_last_rotations(
    tmp_path: Path,
) -> None:
    now = time.time()
    agent = make_agent(tmp_path / "home")
    journal = agent.runtime.journal
    of_web = {"target": "shop_web", "lock_key": "swarm-shop_web", "strategy": "swarm"}
    journal.save(rotation("s1", at=now - 900, **of_web))  # type: ignore[arg-type]
    journal.save(rotation("s2", at=now - 60, status="rolled_back", **of_web))  # type: ignore[arg-type]
    journal.save(rotation("c1", at=now - 30))  # a compose rotation: no service's
    agent.swarm = swarm_scan(FakeDocker())

    doc = live_status(agent, now=now)

    validate_status(doc)
    section = doc["swarm"]
    assert section["role"] == "manager" and section["state"] == "active"
    assert section["node_id"] == "node0123456789"
    api, web = section["services"]
    assert web["name"] == "shop_web" and web["stack"] == "shop" and web["id"] == "a" * 12
    assert web["secrets"] == {
        "/run/secrets/db": {"secret": DB, "reference": "dsofile://shop/db", "version": "local:5"},
        "/run/secrets/site": {
            "secret": SITE,
            "reference": "dsofile://shop/site",
            "version": "local:2",
        },
    }
    assert web["update"] == {
        "state": "updating",
        "in_progress": True,
        "message": "update in progress",
        "started_at": "2026-12-02T05:00:00Z",
    }
    assert web["last_rotation"]["id"] == "s2" and web["last_rotation"]["status"] == "rolled_back"
    assert api["update"]["state"] is None and api["update"]["in_progress"] is False
    assert api["last_rotation"] is None
    assert "swarm" not in doc["notes"]

    text = render(doc)
    at = next(i for i, line in enumerate(text) if line.startswith("swarm:"))
    lines = text[at : at + 3]
    assert lines[0].startswith("swarm: manager (node node01234567), 2 dso services")
    assert lines[1] == "  shop_api (stack shop): /run/secrets/db=dsofile://shop/db@local:5"
    assert "update updating (rolling now)" in lines[2] and "rolled_back, trace trace-s2" in lines[2]


def test_outside_a_swarm_on_a_worker_or_unknown_the_text_is_one_line() -> None:
    none, _ = swarm_doc(SwarmScan(SwarmNode("inactive", False, "")), [])
    worker, _ = swarm_doc(SwarmScan(SwarmNode("active", False, "n1")), [])
    locked, _ = swarm_doc(SwarmScan(SwarmNode("locked", False, "n1")), [])
    unknown, note = swarm_doc(None, [])
    assert (none["role"], worker["role"], locked["role"], unknown["role"]) == (
        "none",
        "worker",
        None,
        None,
    )
    assert note == "swarm unknown: the agent has not looked at the swarm yet"

    def swarm_lines(section: dict[str, Any], notes: dict[str, str] | None = None) -> list[str]:
        lines = render({"swarm": section, "notes": notes or {}})
        return [line for line in lines if line.startswith("swarm")]

    assert swarm_lines(none) == ["swarm: none (this Docker daemon is not in a swarm)"]
    assert swarm_lines(worker)[0].startswith("swarm: worker node")
    assert swarm_lines(locked) == ["swarm: state locked, role unknown"]
    assert swarm_lines(unknown, {"swarm": note or ""}) == [f"swarm: unknown ({note})"]
    assert not [line for line in render({}) if line.startswith("swarm")]  # an older agent


def test_without_an_agent_status_asks_docker_once(tmp_path: Path) -> None:
    layout = local_layout(tmp_path / "home")
    client = FakeDocker()

    doc = offline_status(layout, connect_docker=lambda: client)

    validate_status(doc)
    assert [s["name"] for s in doc["swarm"]["services"]] == ["shop_api", "shop_web"]
    assert client.closed and "swarm" not in doc["notes"]

    def away() -> Any:
        raise DockerUnavailableError("nothing at unix:///nowhere")

    doc = offline_status(layout, connect_docker=away)
    validate_status(doc)
    assert doc["swarm"]["role"] is None
    assert (
        doc["notes"]["swarm"] == "swarm unknown: Docker did not answer (nothing at unix:///nowhere)"
    )

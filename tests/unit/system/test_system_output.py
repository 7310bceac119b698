"""What `docker dso system status` prints: the service, the agent's last activity, the logs."""

from __future__ import annotations

from typing import Any

from kernel.cli.system_output import render

NOW = 1_796_173_000.0


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": 1,
        "unit": "dso-agent.service",
        "installed": True,
        "running": True,
        "enabled": True,
        "systemd": {
            "load_state": "loaded",
            "active_state": "active",
            "sub_state": "running",
            "unit_file_state": "enabled",
            "result": "success",
            "main_pid": 363,
            "invocation_id": "7e9c",
            "restarts": 0,
            "since": NOW - 125,
            "fragment_path": "/etc/systemd/system/dso-agent.service",
            "drop_ins": [],
        },
        "agent": {
            "answers": True,
            "socket": "/run/dso/agent.sock",
            "source": "agent",
            "reason": None,
            "live": True,
            "problems": [],
            "version": "0.1.0",
            "pid": 363,
            "uptime_seconds": 125.0,
            "last_rotation": {
                "at": NOW - 30,
                "target": "service-app.web",
                "status": "succeeded",
                "trace_id": "4bf9",
                "containers": ["app-web-1"],
            },
            "last_event": {
                "docker": {"at": NOW - 5, "detail": "container start"},
                "poll": {"at": NOW - 40, "detail": "3 secrets, 0 moved"},
            },
            "rotations_in_progress": 0,
            "rotations_awaiting_review": 0,
        },
        "logs": {
            "readable": True,
            "note": None,
            "lines": [
                {
                    "ts": NOW - 1,
                    "priority": "info",
                    "identifier": "dso-agent",
                    "pid": 363,
                    "message": "[INFO] dso.agent: Listening on /run/dso/agent.sock",
                }
            ],
        },
    }
    doc.update(changes)
    return doc


def test_a_running_service() -> None:
    text = "\n".join(render(document(), now=NOW))
    assert text.startswith("dso-agent.service: running, enabled\n")
    assert "(2m5s ago), main pid 363" in text
    assert "enabled: enabled (starts at boot)" in text
    assert "agent: live, version 0.1.0, pid 363, up 2m5s (socket /run/dso/agent.sock)" in text
    assert "rotation: service-app.web succeeded 30s ago (trace 4bf9, containers app-web-1)" in text
    assert "docker: 5s ago (container start)" in text
    assert "poll: 40s ago (3 secrets, 0 moved)" in text
    assert "recent logs (journalctl -u dso-agent.service -n 1):" in text
    assert "dso-agent[363]: [INFO] dso.agent: Listening on /run/dso/agent.sock" in text


def test_a_stopped_service_and_an_unreadable_journal() -> None:
    doc = document(running=False, enabled=False)
    doc["systemd"].update(active_state="inactive", sub_state="dead", unit_file_state="disabled")
    doc["agent"].update(
        answers=False,
        live=False,
        reason="no agent socket at /run/dso/agent.sock: the agent is not running",
        stopped_at=NOW - 60,
        last_rotation=None,
        last_event={},
    )
    doc["logs"] = {"readable": False, "note": "journalctl: insufficient permissions", "lines": []}
    lines = render(doc, now=NOW)
    assert lines[0] == "dso-agent.service: STOPPED, disabled"
    text = "\n".join(lines)
    assert "enabled: disabled (does not start at boot)" in text
    assert "agent: does not answer (no agent socket at /run/dso/agent.sock" in text
    assert "rotation: none recorded" in text
    assert "events: none seen yet" in text
    assert "recent logs: not readable (journalctl: insufficient permissions)" in text


def test_a_unit_that_is_not_installed() -> None:
    lines = render(document(installed=False, running=False, enabled=False), now=NOW)
    assert lines[0].startswith("dso-agent.service: NOT INSTALLED (sudo docker dso bootstrap")

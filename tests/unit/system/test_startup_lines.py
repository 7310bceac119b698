"""The journal lines a failed start shows: errors first; the agent's own last lines when systemd
alone said something at error level."""

from __future__ import annotations

import json

from kernel.system.journal import JournalEntry, parse_journal_json
from kernel.system.startup import pick_lines

INVOCATION = "7e9c2ff29d1349ae8397803db30e699e"


def agent(message: str, priority: int = 6, ts: float = 1.0) -> dict[str, object]:
    return {
        "__REALTIME_TIMESTAMP": str(int(ts * 1e6)),
        "PRIORITY": str(priority),
        "SYSLOG_IDENTIFIER": "dso-agent",
        "_PID": "400",
        "_SYSTEMD_INVOCATION_ID": INVOCATION,
        "MESSAGE": message,
    }


def systemd(message: str, priority: int, ts: float = 1.0) -> dict[str, object]:
    return {
        "__REALTIME_TIMESTAMP": str(int(ts * 1e6)),
        "PRIORITY": str(priority),
        "SYSLOG_IDENTIFIER": "systemd",
        "_PID": "1",
        "INVOCATION_ID": INVOCATION,
        "UNIT": "dso-agent.service",
        "MESSAGE": message,
    }


def entries(*docs: dict[str, object]) -> list[JournalEntry]:
    return parse_journal_json("\n".join(json.dumps(d) for d in docs) + "\nnot json\n")


def test_journal_json_is_parsed_into_entries() -> None:
    [line, failed] = entries(
        agent("[INFO] dso.agent: Agent started", ts=1796172903.5),
        systemd("Failed to start dso-agent.service", 3),
    )
    assert line.from_agent and not failed.from_agent
    assert (line.identifier, line.pid, line.priority) == ("dso-agent", 400, 6)
    assert line.ts == 1796172903.5
    assert line.line().endswith(" dso-agent[400]: [INFO] dso.agent: Agent started")
    assert failed.as_dict()["priority"] == "err"


def test_a_message_that_is_not_utf8_arrives_as_bytes() -> None:
    doc = agent("")
    doc["MESSAGE"] = [104, 105, 255]
    [entry] = entries(doc)
    assert entry.message == "hi\ufffd"


def test_the_agents_error_lines_are_shown() -> None:
    found = entries(
        agent("[INFO] starting", 6, 1),
        agent("[ERROR] Agent stopped: /etc/dso/dso.yaml:6: bogus_key: unknown key", 3, 2),
        systemd("dso-agent.service: Main process exited, code=exited, status=3", 5, 3),
        systemd("Failed to start dso-agent.service", 3, 4),
    )
    assert [e.message for e in pick_lines(found)] == [
        "[ERROR] Agent stopped: /etc/dso/dso.yaml:6: bogus_key: unknown key",
        "Failed to start dso-agent.service",
    ]


def test_without_an_error_line_of_the_agent_its_own_last_lines_are_shown_too() -> None:
    # An agent that dies before its logging is set up prints its reason at the default priority.
    found = entries(
        systemd("Started dso-agent.service", 6, 1),
        agent("dso: error: /etc/dso/dso.yaml:6: bogus_key: unknown key", 6, 2),
        systemd("dso-agent.service: Failed with result 'exit-code'.", 4, 3),
        systemd("Failed to start dso-agent.service", 3, 4),
    )
    assert [e.message for e in pick_lines(found)] == [
        "dso: error: /etc/dso/dso.yaml:6: bogus_key: unknown key",
        "Failed to start dso-agent.service",
    ]


def test_at_most_the_last_ten_of_each() -> None:
    found = entries(*(agent(f"[ERROR] failure {i}", 3, i) for i in range(25)))
    shown = pick_lines(found)
    assert [e.message for e in shown] == [f"[ERROR] failure {i}" for i in range(15, 25)]
    assert pick_lines([]) == []

"""Drain: reading a namespace's TCP tables, the forwarding rules, and finding stale ones. The
real drain (iptables on the Docker host, a request in flight) runs in
tests/integration/test_rotation_drain.py."""

from __future__ import annotations

import threading
from pathlib import Path

from kernel.containers.drain import Drainer, Forward, forwards, inbound_established, stale_rules
from kernel.containers.view import ContainerView

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
#: 127.0.0.11:43319 listening (Docker's DNS), 0.0.0.0:5432 listening, an outbound connection
#: from port 40000 to 10.0.0.9:5432 (the app's database: not inbound).
TCP = HEADER + (
    "   0: 0B00007F:A937 00000000:0000 0A 0 0 0 0 0\n"
    "   1: 00000000:1538 00000000:0000 0A 0 0 0 0 0\n"
    "   2: 020013AC:9C40 09000A0A:1538 01 0 0 0 0 0\n"
)
#: :::80 listening; established from ::ffff:172.19.0.5 (a client) and from ::1 (the container's
#: own health check), and a TIME_WAIT one from the client (finished).
TCP6 = HEADER + (
    "   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0\n"
    "   1: 0000000000000000FFFF0000020013AC:0050 0000000000000000FFFF0000050013AC:D431 01 0\n"
    "   2: 00000000000000000000000001000000:0050 00000000000000000000000001000000:D432 01 0\n"
    "   3: 0000000000000000FFFF0000020013AC:0050 0000000000000000FFFF0000050013AC:D433 06 0\n"
)


def tables(tmp_path: Path, tcp: str = TCP, tcp6: str = TCP6) -> Path:
    (tmp_path / "tcp").write_text(tcp)
    (tmp_path / "tcp6").write_text(tcp6)
    return tmp_path


def test_only_established_connections_from_outside_to_a_listening_port_count(
    tmp_path: Path,
) -> None:
    assert inbound_established(tables(tmp_path)) == 1
    assert inbound_established(tables(tmp_path, tcp6=HEADER)) == 0
    # The app closed, the answer's tail not yet acknowledged (FIN_WAIT1): still open.
    closing = TCP6.replace("D433 06", "D433 04")
    assert inbound_established(tables(tmp_path, tcp6=closing)) == 2


def test_unreadable_tables_count_as_drained(tmp_path: Path) -> None:
    assert inbound_established(tmp_path / "gone") == 0


def view(cid: str, pid: int, **addresses: str) -> ContainerView:
    networks = {
        name: {"NetworkID": f"id-{name}", "IPAddress": ip, "Aliases": ["web"]}
        for name, ip in addresses.items()
    }
    return ContainerView(
        {
            "Id": cid * 8,
            "Name": f"/{cid}",
            "State": {"Running": True, "Pid": pid},
            "NetworkSettings": {"Networks": networks},
            "Config": {"Labels": {}},
        }
    )


def test_one_rule_per_shared_network_with_an_address() -> None:
    old = view("aaaaaaaa", 1, front="172.19.0.2", back="172.20.0.2", only_old="172.21.0.2")
    new = view("bbbbbbbb", 2, front="172.19.0.7", back="")
    assert forwards(old, new) == [Forward("172.19.0.2", "172.19.0.7", "dso-drain:aaaaaaaaaaaa")]


def test_rules_are_found_back_from_iptables_listing() -> None:
    listing = [
        "-P PREROUTING ACCEPT",
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
        '-A PREROUTING -d 172.19.0.2/32 -p tcp -m comment --comment "dso-drain:aaaaaaaaaaaa" '
        "-j DNAT --to-destination 172.19.0.7",
    ]
    ((short_id, delete),) = stale_rules(listing)
    assert short_id == "aaaaaaaaaaaa"
    assert delete[:3] == ["-D", "PREROUTING", "-d"]
    assert "dso-drain:aaaaaaaaaaaa" in delete  # unquoted, as iptables -D wants it
    assert delete[-2:] == ["--to-destination", "172.19.0.7"]


def test_a_drain_forwards_waits_for_the_connection_then_removes_the_rule(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    net = proc / "1" / "net"
    net.mkdir(parents=True)
    tables(net)
    calls: list[list[str]] = []
    drainer = Drainer(timeout=5, linger=0.0, run=calls.append, proc=proc)
    old = view("aaaaaaaa", 1, front="172.19.0.2")
    new = view("bbbbbbbb", 2, front="172.19.0.7")
    threading.Timer(0.3, lambda: tables(net, tcp6=HEADER)).start()  # the client finishes

    with drainer.draining(old, new) as drained:
        assert [c[0] for c in calls] == ["-I"]
        assert drained.left_open == 0 and drained.seconds >= 0.25
    assert [c[0] for c in calls] == ["-I", "-D"]
    assert calls[0][1:] == calls[1][1:]


def test_a_connection_that_never_ends_is_given_up_on_at_the_timeout(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "1" / "net").mkdir(parents=True)
    tables(proc / "1" / "net")
    calls: list[list[str]] = []
    drainer = Drainer(timeout=0.2, linger=0.0, run=calls.append, proc=proc)
    with drainer.draining(view("a", 1, n="10.0.0.2"), view("b", 2, n="10.0.0.3")) as drained:
        assert drained.left_open == 1
        assert "1 connection(s) still open after 0.2 s" in drained.describe()
    assert [c[0] for c in calls] == ["-I", "-D"]


def test_a_failing_iptables_leaves_at_once_without_rules(tmp_path: Path) -> None:
    def refuse(args: list[str]) -> None:
        raise OSError("iptables: Permission denied (you must be root)")

    drainer = Drainer(timeout=5, linger=0.0, run=refuse, proc=tmp_path)
    with drainer.draining(view("a", 1, n="10.0.0.2"), view("b", 2, n="10.0.0.3")) as drained:
        assert drained.forwarded == 0 and drained.seconds == 0

"""Who may use the agent's socket (peers.py), the socket file itself (unix.py) and the client
commands use (client.py), on real unix sockets: credentials from the kernel, the allow rules,
mode 0660, a stale socket replaced, a live one refused, paths longer than ``sun_path``.

The denial of a real non-dso user is in tests/integration/test_agent_api.py (it needs root to
create the user); here the rules are exercised with the credentials a peer would have.
"""

from __future__ import annotations

import gc
import grp
import json
import os
import socket
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.agent.api import unix
from kernel.agent.api.client import AgentClient
from kernel.agent.api.peers import Authorizer, Peer, peer_of
from kernel.errors import AgentError, AgentRequestError, AgentUnavailableError
from tests.unit.agent_api_support import Served, serve, wait

NOBODY = 65534
NO_GROUP = "dsotest-no-such-group"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = serve(tmp_path)
    try:
        yield running
    finally:
        running.server.stop()


# -- peer credentials ---------------------------------------------------------------------------


def test_peer_credentials_come_from_the_kernel() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        peer = peer_of(left)
    assert peer == Peer(os.getpid(), os.getuid(), os.getgid())
    assert peer.to_dict()["user"] == peer.user


def test_root_and_the_agents_own_user_are_allowed() -> None:
    rules = Authorizer(uid=4242, group=NO_GROUP)
    assert rules.allows(Peer(pid=1, uid=0, gid=0))
    assert rules.allows(Peer(pid=1, uid=4242, gid=4242))
    assert not rules.allows(Peer(pid=1, uid=NOBODY, gid=NOBODY))


def test_without_the_group_nobody_else_is_allowed() -> None:
    rules = Authorizer(uid=4242, group=NO_GROUP)
    assert not rules.allows(Peer(pid=os.getpid(), uid=1000, gid=1000))


def test_a_member_of_the_group_is_allowed_by_its_primary_group() -> None:
    group = grp.getgrgid(os.getgid()).gr_name  # a group that exists here
    rules = Authorizer(uid=4242, group=group)
    assert rules.allows(Peer(pid=2**22 + 1, uid=NOBODY, gid=os.getgid()))
    assert not rules.allows(Peer(pid=2**22 + 1, uid=NOBODY, gid=NOBODY))


def test_a_member_of_the_group_is_allowed_by_its_process_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The supplementary groups are those of the calling process (``/proc/<pid>/status``),
    not what /etc/group says now."""
    from kernel.agent.api import peers

    group = grp.getgrgid(os.getgid()).gr_name
    gid = os.getgid()
    rules = Authorizer(uid=4242, group=group)
    monkeypatch.setattr(peers, "_process_groups", lambda pid: {5, gid} if pid == 77 else set())
    assert rules.allows(Peer(pid=77, uid=NOBODY, gid=NOBODY))
    assert not rules.allows(Peer(pid=78, uid=NOBODY, gid=NOBODY))


def test_process_groups_are_read_from_proc() -> None:
    from kernel.agent.api.peers import _process_groups

    assert _process_groups(os.getpid()) == set(os.getgroups())
    assert _process_groups(2**22 + 7) is None  # no such process


# -- the socket file ----------------------------------------------------------------------------


def test_the_socket_file_is_mode_0660(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    old = os.umask(0o000)  # whatever the agent's umask, the mode is the same
    try:
        sock = unix.bind(path)
    finally:
        os.umask(old)
    with sock:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert stat.filemode(st.st_mode) == "srw-rw----"


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nothing listens: an agent that died
    path.chmod(0o600)
    with unix.bind(path) as sock:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o660
        client = unix.connect(path, 1.0)
        conn, _ = sock.accept()
        client.close()
        conn.close()


def test_a_live_socket_is_refused_and_kept(tmp_path: Path, served: Served) -> None:
    with pytest.raises(AgentError) as refused:
        unix.bind(served.path)
    assert not isinstance(refused.value, AgentUnavailableError)
    assert f"another agent answers on {served.path}" in refused.value.message
    assert refused.value.exit_code == 10
    # the first agent still answers on it
    assert AgentClient(served.path).call("health")["action"] == "health"


def test_a_file_that_is_not_a_socket_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    path.write_text("not a socket")
    with pytest.raises(AgentError, match="exists and is not a socket"):
        unix.bind(path)
    assert path.read_text() == "not a socket"


def test_remove_takes_only_the_socket_this_agent_bound(tmp_path: Path) -> None:
    """Ours was unlinked and another agent bound the path (the file system often gives the
    new socket the same inode number): stopping must leave the other agent's socket alone."""
    path = tmp_path / "agent.sock"
    with unix.bind(path):
        ident = unix.identity(path)
    path.unlink()
    time.sleep(0.05)  # a later start, as it would be
    with unix.bind(path):  # another agent's socket now
        unix.remove(path, ident)
        assert path.exists()
        unix.remove(path, unix.identity(path))
        assert not path.exists()


def test_a_path_longer_than_sun_path_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "agent.sock"
    assert len(os.fsencode(path)) > 107
    with unix.bind(path) as sock:
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        client = unix.connect(path, 1.0)
        conn, _ = sock.accept()
        client.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        client.close()
        conn.close()


# -- the client ---------------------------------------------------------------------------------


def test_client_returns_the_result(served: Served) -> None:
    result = AgentClient(served.path).call("rotations", status="failed", limit=3)
    assert result == {
        "action": "rotations",
        "params": {"status": "failed", "limit": 3},
        "dialect": "lines",
    }


def test_client_raises_the_agents_refusal_with_its_status(served: Served) -> None:
    """And closes its connection: a command that reports the refusal leaks no socket (under
    ``-W error`` the leak's ResourceWarning is an error at interpreter exit)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            AgentClient(served.path).call("nope")
        except AgentRequestError as exc:
            refused = exc
        else:
            raise AssertionError("no refusal")
        gc.collect()
    assert refused.status == 404
    assert "the agent refused: unknown action 'nope'" in refused.message
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_client_follows_an_event_stream(served: Served) -> None:
    events = AgentClient(served.path).stream()
    got: list[dict[str, object]] = []

    def follow() -> None:
        for event in events:
            got.append(event)
            if len(got) == 2:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    assert wait(lambda: served.bus._streams)
    served.bus.publish("check", source="poll", secrets=1, moved=0)
    served.bus.publish("rotation", target="container:web", status="completed")
    reader.join(5)
    assert [e["type"] for e in got] == ["check", "rotation"]
    events.close()


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        ("missing", "no agent socket at"),
        ("stale", "nothing answers on"),
    ],
)
def test_client_says_plainly_when_no_agent_answers(
    tmp_path: Path, prepare: str, message: str
) -> None:
    path = tmp_path / "agent.sock"
    if prepare == "stale":
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(path))
        dead.close()
    with pytest.raises(AgentUnavailableError) as unavailable:
        AgentClient(path).call("status")
    assert message in unavailable.value.message
    assert "docker dso agent" in (unavailable.value.hint or "")


def test_client_rejects_an_answer_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "fake.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1000)
            conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")

    server = threading.Thread(target=answer)
    server.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                AgentClient(path).call("status")
            except AgentRequestError as exc:
                message = exc.message
            gc.collect()
    finally:
        server.join(5)
        listener.close()
    assert "answered something not JSON" in message
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_client_request_is_one_json_line(served: Served) -> None:
    AgentClient(served.path).call("status", since=1.5)
    request = served.actions.requests[-1]
    assert request.dialect == "lines" and request.params == {"since": 1.5}
    assert json.dumps(request.params) == '{"since": 1.5}'

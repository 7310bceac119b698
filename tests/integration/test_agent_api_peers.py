"""Who may use the real agent's socket, and the socket file's life: a real user created for
the test (not root, not in group ``dso``) is kept out by the file mode, then refused by its peer
credentials where the mode is wider (403, a WARNING naming uid and pid, an audit line, a
``denied`` event, the metric), then allowed once in group ``dso`` (and, after a restart, by the
socket's own group); a stale socket file is replaced, a live one makes a second agent refuse to
start, and the file goes when the agent stops, even with an event stream open.

Runs as root (it adds and removes a user, and group ``dso`` when there is none). Each test
starts its own agent.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kernel.agent.api.peers import group_id
from tests.conftest import REPO
from tests.integration.agent_api_support import (
    EventReader,
    audit_lines,
    healthy,
    plain_home,
    running,
    sh,
    socket_of,
)
from tests.integration.agent_support import wait_until
from tests.socket_support import http

pytestmark = pytest.mark.integration


# -- peer credentials: a real user that is not in group dso -------------------------------------


@dataclass
class User:
    name: str
    uid: int
    gid: int


@pytest.fixture
def stranger() -> Iterator[User]:
    name = "dsotest" + secrets.token_hex(4)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        entry = pwd.getpwnam(name)
        yield User(name, entry.pw_uid, entry.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@contextmanager
def dso_group() -> Iterator[int]:
    """Group dso: created (and removed afterwards) only if it does not exist."""
    created = group_id("dso") is None
    if created:
        subprocess.run(["groupadd", "--system", "dso"], check=True, capture_output=True)
    try:
        gid = group_id("dso")
        assert gid is not None
        yield gid
    finally:
        if created:
            subprocess.run(["groupdel", "dso"], capture_output=True)


#: Runs as the stranger with the system Python (the venv's lives under /root): the dso client
#: asks for ``health``; prints its pid, then the result or the error.
CLIENT = """
import json, os, sys
from pathlib import Path
from kernel.agent.api.client import AgentClient
from kernel.errors import DSOError
print(os.getpid(), flush=True)
try:
    print(json.dumps({"result": AgentClient(Path(sys.argv[1])).call("health")}))
except DSOError as exc:
    status = getattr(exc, "status", None)
    print(json.dumps({"error": exc.message, "hint": exc.hint, "status": status}))
"""


def as_user(user: User, *argv: str, groups: bool) -> subprocess.CompletedProcess[str]:
    """``argv`` as ``user``: its uid and gid, and either its groups from /etc/group or none."""
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={user.uid}",
            f"--regid={user.gid}",
            "--init-groups" if groups else "--clear-groups",
            *argv,
        ],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
    )


def client_as(user: User, sock: Path, *, groups: bool) -> tuple[int, dict[str, Any]]:
    done = as_user(user, "/usr/bin/python3", "-c", CLIENT, str(sock), groups=groups)
    assert done.returncode == 0, done.stderr
    pid, doc = done.stdout.splitlines()
    return int(pid), json.loads(doc)


def denied_total(sock: Path) -> float:
    text = http(sock, "GET", "/metrics").body.decode()
    (sample,) = [x for x in text.splitlines() if x.startswith("dso_api_denied_total ")]
    return float(sample.split()[1])


def test_a_user_outside_group_dso_is_refused_then_allowed_once_in_it(
    tmp_path: Path, stranger: User
) -> None:
    # the socket in a directory anyone may enter: only its own mode keeps the stranger out
    sockdir = Path(tempfile.mkdtemp(prefix="dsotest-sock-"))
    sockdir.chmod(0o755)
    sock = sockdir / "agent.sock"
    home = plain_home(tmp_path, extra=f"  socket: {sock}\n")
    try:
        with running(home, tmp_path / "agent.log") as agent:
            wait_until(lambda: healthy(sock))
            assert stat.filemode(os.lstat(sock).st_mode) == "srw-rw----"
            assert os.lstat(sock).st_uid == 0

            # 1. the file mode: the stranger cannot even connect
            _pid, refused = client_as(stranger, sock, groups=False)
            assert refused["error"] == f"not allowed to open the agent socket {sock}"
            assert "member of group dso" in refused["hint"]
            curl = as_user(
                stranger, "curl", "-sS", "--unix-socket", str(sock), "http://health", groups=False
            )
            assert curl.returncode == 7, curl  # could not connect
            assert "socket: refused" not in agent.since_start()

            # 2. the peer check, where the file mode is wider
            events = EventReader(sock, "lines", "denied")
            try:
                wait_until(lambda: events.answer is not None, 10)
                sock.chmod(0o666)
                pid, forbidden = client_as(stranger, sock, groups=False)
                assert forbidden["status"] == 403
                assert forbidden["error"] == (
                    f"the agent refused: uid {stranger.uid} may not use the agent's socket: "
                    "ask as root or as a member of group dso"
                )
                denied = events.wait_for(type="denied", pid=pid, timeout=10)
            finally:
                events.close()
            assert denied["uid"] == stranger.uid and denied["gid"] == stranger.gid
            curl = as_user(
                stranger,
                "curl",
                "-s",
                "-w",
                "\n%{http_code}",
                "--unix-socket",
                str(sock),
                "http://health",
                groups=False,
            )
            body, code = curl.stdout.rsplit("\n", 1)
            assert code == "403" and json.loads(body)["status"] == 403
            log = agent.since_start()
            warning = f"socket: refused uid {stranger.uid} (pid {pid}, gid {stranger.gid})"
            assert warning in log
            assert any(warning in x and "WARNING" in x.upper() for x in log.splitlines())
            audit = [a for a in audit_lines(home) if a["outcome"] == "denied"]
            assert len(audit) == 2
            assert audit[0]["caller"] == {
                "pid": pid,
                "uid": stranger.uid,
                "gid": stranger.gid,
                "user": stranger.name,
            }
            assert denied_total(sock) == 2

            # 3. in group dso, the same user is allowed
            with dso_group() as gid:
                subprocess.run(
                    ["gpasswd", "-a", stranger.name, "dso"], check=True, capture_output=True
                )
                _pid, allowed = client_as(stranger, sock, groups=True)
                assert allowed["result"]["live"] is True, allowed
                assert denied_total(sock) == 2

                # and after a restart the socket itself is the group's (no chmod needed)
                assert agent.stop() == 0
                agent.start(ready="Listening on")
                wait_until(lambda: healthy(sock))
                st = os.lstat(sock)
                assert stat.filemode(st.st_mode) == "srw-rw----" and st.st_gid == gid
                assert grp.getgrgid(st.st_gid).gr_name == "dso"
                curl = as_user(
                    stranger, "curl", "-s", "--unix-socket", str(sock), "http://health", groups=True
                )
                assert json.loads(curl.stdout)["live"] is True, curl
                assert agent.stop() == 0
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


# -- the socket file ----------------------------------------------------------------------------


def test_a_stale_socket_is_replaced_and_the_socket_removed_at_stop(tmp_path: Path) -> None:
    home = plain_home(tmp_path)
    sock = socket_of(home)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock))
    dead.close()  # what an agent killed with SIGKILL leaves
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    with running(home, tmp_path / "agent.log") as agent:
        wait_until(lambda: healthy(sock))
        st = os.lstat(sock)
        assert stat.filemode(st.st_mode) == "srw-rw----"
        done = sh(f"ls -l {shlex.quote(str(sock))}", home.env)
        assert done.stdout.startswith("srw-rw---- ")
        # an event stream in progress does not hold the stop up
        follower = EventReader(sock, "sse")
        try:
            wait_until(lambda: follower.answer is not None, 10)
            started = time.monotonic()
            assert agent.stop() == 0
            seconds = time.monotonic() - started
        finally:
            follower.close()
        assert not sock.exists()
        assert seconds < 4, f"the agent took {seconds:.1f}s to stop"


def test_a_second_agent_on_a_live_socket_refuses_to_start(tmp_path: Path) -> None:
    first = plain_home(tmp_path / "first")
    sock = socket_of(first)
    with running(first, tmp_path / "first.log") as agent:
        wait_until(lambda: healthy(sock))
        second = plain_home(tmp_path / "second", extra=f"  socket: {sock}\n")
        done = second.dso("agent", ok=False, timeout=60)
        assert done.returncode == 10, done.stderr
        assert f"another agent answers on {sock}" in done.stderr
        # the first agent keeps its socket and answers on it
        assert sock.exists()
        doc = http(sock, "GET", "/", host="health").json()
        assert agent.proc is not None and doc["pid"] == agent.proc.pid
        shutil.rmtree(second.secrets_base.parent, ignore_errors=True)

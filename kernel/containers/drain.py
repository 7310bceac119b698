"""Draining the old container of a rolling swap: new connections go to the copy, established
ones finish, and only then does the old container leave its networks.

Docker's DNS keeps answering a service's aliases with a container's address until the container
*leaves* the network (a stopping container is still answered through its grace period), and
leaving the network cuts every connection in flight to it. So before leaving, dso:

1. adds, for each network the old container shares with its copy, a host rule in the ``nat``
   table's ``PREROUTING`` chain: a *new* TCP connection to the old address is sent to the copy's
   address on that network (DNAT). Traffic between two containers of one bridge network passes
   through iptables (``br_netfilter``, which Docker turns on), and NAT is decided on a
   connection's first packet only, so connections already established keep going to the old
   container;
2. watches the old container's TCP table (``/proc/<pid>/net/tcp`` and ``tcp6``, its network
   namespace's) until no connection to a port it listens on may still carry data (established,
   or closed by the app with the answer's tail not yet acknowledged), or the drain timeout
   expires (a keep-alive connection the app never closes);
3. leaves the networks (the caller's step), so DNS stops answering with the old address;
4. keeps the rules :data:`LINGER` seconds longer, then deletes them: a client that resolved the
   old address just before the disconnect and connects just after still reaches the copy (the
   rule rewrites its SYN on the bridge, whether the old container is there or not). A connection
   sent through a rule lives in the host's connection tracking, not in the old container, so it
   survives the disconnect and the rule's removal.

No proxy sits in the data path, and nothing changes inside any container. It needs what only
the Docker host's root has: dso running as root beside the daemon, ``iptables`` (the same
command Docker uses, so both agree on legacy or nft) and ``bridge-nf-call-iptables`` on. Where
one is missing, :func:`unavailable` says which, and the swap goes on as before (the request in
flight at the disconnect, if any, is cut). Rules carry the comment ``dso-drain:<old id>``:
:func:`sweep` deletes those a killed process left behind (``docker dso recover``, agent start).
IPv4 only: an IPv6 address is not forwarded (the old container still drains, its established
connections finish; new IPv6 connections are cut at the disconnect as before).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.containers.swap import find

if TYPE_CHECKING:
    import docker

    from kernel.containers.view import ContainerView

#: Seconds the forwarding rules outlive the disconnect: a client resolves and connects within
#: milliseconds; short, because Docker may give the freed address to a new container.
LINGER = 0.5
#: Seconds between two reads of the old container's TCP table.
POLL = 0.05
#: The comment every rule carries, followed by the old container's short id.
TAG = "dso-drain:"
#: Seconds an ``iptables`` call may take (``-w`` waits for Docker's own xtables lock).
_IPTABLES_TIMEOUT = 30
_BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
_LISTEN = "0A"
#: States of a connection that may still carry data to or from the app: ESTABLISHED, SYN_RECV,
#: FIN_WAIT1 (the app closed; the answer's tail may be unacknowledged), CLOSE_WAIT, LAST_ACK,
#: CLOSING. Done: FIN_WAIT2 (all of ours acknowledged), TIME_WAIT, CLOSE.
_OPEN = frozenset({"01", "03", "04", "08", "09", "0B"})

#: Under the ``dso`` tree like kernel.log.get_logger's (this layer does not import kernel.log).
log = logging.getLogger("dso.containers.drain")


def unavailable(proc: Path = Path("/proc")) -> str | None:
    """Why connections cannot be drained on this host, or None when they can."""
    if os.geteuid() != 0:
        return "dso is not running as root (the agent is; `sudo docker dso rotate` is)"
    if shutil.which("iptables") is None:
        return "iptables is not installed"
    bridge_nf = proc / _BRIDGE_NF.relative_to("/proc")
    try:
        if bridge_nf.read_text().strip() != "1":
            return f"{_BRIDGE_NF} is 0 (bridged traffic does not pass through iptables)"
    except OSError:
        return f"{_BRIDGE_NF} is missing (the br_netfilter module is not loaded)"
    return None


@functools.cache
def _host_unavailable() -> str | None:
    why = unavailable()
    if why is not None:
        log.info("in-flight connections are not drained before a swap: %s", why)
    return why


def drainer_for(timeout: float) -> Drainer | None:
    """A drainer with ``timeout`` (``agent.rotation.drain_timeout``), or None when it is 0 or
    this host cannot drain (the reason is logged once)."""
    if timeout <= 0 or _host_unavailable() is not None:
        return None
    return Drainer(timeout)


@dataclass(frozen=True, slots=True)
class Forward:
    """One rule: new TCP connections to ``old`` go to ``new``."""

    old: str
    new: str
    tag: str

    def spec(self) -> list[str]:
        return [
            "PREROUTING",
            "-d",
            f"{self.old}/32",
            "-p",
            "tcp",
            "-m",
            "comment",
            "--comment",
            self.tag,
            "-j",
            "DNAT",
            "--to-destination",
            self.new,
        ]


@dataclass(frozen=True, slots=True)
class Drained:
    """How a drain went: seconds waited, and connections still open when it gave up."""

    seconds: float
    left_open: int
    forwarded: int

    def describe(self) -> str:
        if not self.forwarded:
            return "no address to forward"
        if self.left_open:
            return (
                f"{self.left_open} connection(s) still open after {self.seconds:.1f} s "
                "(drain timeout): cut"
            )
        return f"drained in {self.seconds:.2f} s"


class Drainer:
    """Drains old containers before they leave their networks (:mod:`module docs <.drain>`)."""

    def __init__(
        self,
        timeout: float,
        *,
        linger: float = LINGER,
        run: Callable[[list[str]], None] | None = None,
        proc: Path = Path("/proc"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.linger = linger
        self._run = run or iptables
        self._proc = proc
        self._clock = clock

    @contextmanager
    def draining(
        self,
        old: ContainerView,
        new: ContainerView,
        stop: threading.Event | None = None,
    ) -> Iterator[Drained]:
        """Forward new connections to ``new``, wait for ``old``'s established ones to finish,
        and yield (the caller disconnects ``old``); on exit, the rules go after the linger."""
        added: list[Forward] = []
        try:
            for rule in forwards(old, new):
                self._run(["-I", *rule.spec()])
                added.append(rule)
        except OSError as exc:  # no forwarding: leave as before, cutting what is in flight
            log.warning("could not forward new connections to the new container: %s", exc)
            self._delete(added)
            added = []
        try:
            drained = self._wait(old, stop, forwarded=len(added)) if added else Drained(0, 0, 0)
            left = self._clock()
            yield drained
            rest = self.linger - (self._clock() - left)
            if added and rest > 0:
                (stop or threading.Event()).wait(rest)
        finally:
            self._delete(added)

    def _delete(self, rules: list[Forward]) -> None:
        for rule in rules:
            try:
                self._run(["-D", *rule.spec()])
            except OSError as exc:  # swept by the next `recover`
                log.warning("could not delete the drain rule %s: %s", rule.tag, exc)

    def _wait(self, old: ContainerView, stop: threading.Event | None, forwarded: int) -> Drained:
        started = self._clock()
        pid = int(old.state.get("Pid") or 0)
        open_now = 0
        while pid > 0:
            open_now = inbound_established(self._proc / str(pid) / "net")
            waited = self._clock() - started
            if open_now == 0 or waited >= self.timeout:
                break
            if stop is not None and stop.is_set():
                break
            time.sleep(POLL)
        return Drained(round(self._clock() - started, 3), open_now, forwarded)


def forwards(old: ContainerView, new: ContainerView) -> list[Forward]:
    """A rule per network both containers are on with an IPv4 address."""
    theirs = {n.network_id: n.ip_address for n in new.networks}
    found = []
    for network in old.networks:
        target = theirs.get(network.network_id)
        if network.ip_address and target and network.ip_address != target:
            found.append(Forward(network.ip_address, target, TAG + old.short_id))
    return found


def inbound_established(net: Path) -> int:
    """Connections to a port the namespace listens on, from another host (a loopback peer is
    the container talking to itself), that may still carry data (:data:`_OPEN`), in ``net``'s
    ``tcp`` and ``tcp6``; 0 when the tables cannot be read (the container has exited)."""
    rows: list[tuple[str, str, str]] = []
    for table in ("tcp", "tcp6"):
        try:
            lines = (net / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3:
                rows.append((fields[1], fields[2], fields[3]))
    listening = {_port(local) for local, _, state in rows if state == _LISTEN}
    return sum(
        1
        for local, remote, state in rows
        if state in _OPEN and _port(local) in listening and not _loopback(remote)
    )


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _loopback(address: str) -> bool:
    """Is a ``/proc/net/tcp`` address (hex, 32-bit words in host order) a loopback one?"""
    hexed = address.rsplit(":", 1)[0]
    words = [bytes.fromhex(hexed[i : i + 8])[::-1] for i in range(0, len(hexed), 8)]
    ip = ipaddress.ip_address(b"".join(words))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def iptables(args: list[str]) -> None:
    """Run ``iptables -w -t nat ARGS``; OSError with its message when it fails."""
    try:
        done = subprocess.run(
            ["iptables", "-w", "-t", "nat", *args],
            capture_output=True,
            text=True,
            timeout=_IPTABLES_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"iptables did not answer in {_IPTABLES_TIMEOUT} s") from exc
    if done.returncode != 0:
        raise OSError((done.stderr or done.stdout).strip() or f"exit {done.returncode}")


def stale_rules(listing: Iterable[str]) -> list[tuple[str, list[str]]]:
    """``(old short id, delete arguments)`` of each dso drain rule in ``iptables -S`` output."""
    found = []
    for line in listing:
        try:
            words = shlex.split(line)  # the comment is quoted
        except ValueError:
            continue
        if len(words) < 2 or words[0] != "-A" or "--comment" not in words:
            continue
        comment = words[words.index("--comment") + 1]
        if comment.startswith(TAG):
            found.append((comment[len(TAG) :], ["-D", *words[1:]]))
    return found


def sweep(client: docker.DockerClient, run: Callable[[list[str]], None] | None = None) -> int:
    """Delete the drain rules of old containers that have left their networks or are gone
    (a process killed mid-drain); the rules of a drain in progress stay. Returns how many."""
    if unavailable() is not None:
        return 0
    listed = subprocess.run(
        ["iptables", "-w", "-t", "nat", "-S", "PREROUTING"],
        capture_output=True,
        text=True,
        timeout=_IPTABLES_TIMEOUT,
        check=False,
    )
    if listed.returncode != 0:
        return 0
    deleted = 0
    for short_id, delete in stale_rules(listed.stdout.splitlines()):
        view = find(client, short_id)
        if view is not None and view.networks and view.running:
            continue
        try:
            (run or iptables)(delete)
            deleted += 1
        except OSError as exc:
            log.warning("could not delete the stale drain rule of %s: %s", short_id, exc)
    return deleted

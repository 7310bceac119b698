"""An operator's whole journey with the host agent, on a real systemd with its own Docker Engine
(the "test host", tests/systemd_host.py), from the release tarball an operator installs:

install → ``bootstrap agent`` → ``system enable`` (healthy) → ``status``, socket health,
``doctor`` → a compose project with secrets, a looping client → the secret changes → the agent
rotates it with no failed request → a failing rotation rolled back, ``system logs -p err`` shows
it and ``journalctl DSO_TRACE_ID=…`` follows it → ``kill -9`` of the agent → systemd restarts it,
recovery logged, serving again → a reboot (``/run`` emptied) → agent up, containers serving with
their files → upgrade to a newer build, roll back → ``system disable`` → stopped and disabled,
containers still serving with their files. The runbooks of docs/operations.md run as written on
the way (blocks marked ``<!-- runbook: NAME -->``).

Run with ``-s`` to see the figures (enable → healthy, SIGKILL → serving, reboot → serving).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.systemd_host import REPO, TestHost, build_image

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

IMAGE = "dso-test/busybox:1"
OPERATIONS = REPO / "docs" / "operations.md"
#: Values no log line, journal field or status document may ever show.
CANARY_V1 = "canary-site-v1-7f3a9c"
CANARY_V2 = "canary-site-v2-41be0d"
TOKEN = "canary-token-d8e2f5"

COMPOSE = """\
name: shop
services:
  web:
    image: dso-test/busybox:1
    init: true
    restart: unless-stopped
    scale: 2
    stop_grace_period: 2s
    command:
      - sh
      - -c
      - |
        mkdir -p /www
        echo "$$SITE_VERSION" > /www/index.html
        exec httpd -f -p 80 -h /www
    environment:
      SITE_VERSION: dso://shop/site_version
      API_TOKEN_FILE: dsofile://shop/api_token
    healthcheck:
      test: ["CMD-SHELL", "test -s $$API_TOKEN_FILE && wget -q -O- http://127.0.0.1/"]
      interval: 30s
    networks:
      default:
        aliases: [site]
  # Healthy only while its token file says "good": a bad value makes its rotation fail the gate.
  picky:
    image: dso-test/busybox:1
    init: true
    restart: unless-stopped
    stop_grace_period: 1s
    command: ["sh", "-c", "exec httpd -f -p 80 -h /"]
    environment:
      MODE_FILE: dsofile://shop/picky_mode
    healthcheck:
      test: ["CMD-SHELL", "test \\"$$(cat $$MODE_FILE)\\" = good"]
      interval: 30s
  client:
    image: dso-test/busybox:1
    init: true
    restart: unless-stopped
    stop_grace_period: 1s
    command:
      - sh
      - -c
      - |
        mkdir -p /tmp
        until wget -q -O- http://site/ >/dev/null 2>&1; do usleep 100000; done
        ok=0; fail=0; last=none
        while true; do
          if body=$$(timeout 2 wget -q -O- http://site/ 2>/tmp/err); then
            ok=$$((ok+1)); last=$$body
          else
            rc=$$?; fail=$$((fail+1))
            echo "rc=$$rc after $$ok ok: $$(cat /tmp/err)" >> /tmp/failures
          fi
          echo "$$ok $$fail $$last" > /tmp/report.tmp
          mv /tmp/report.tmp /tmp/report
          usleep 20000
        done
"""


# -- the releases -----------------------------------------------------------------------------


def _build(*args: str) -> Path:
    """Run the release builder (a no-op when up to date); the tarball it reports."""
    done = subprocess.run(
        [sys.executable, str(REPO / "build" / "build_release.py"), "dist", *args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"build_release.py dist {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    out = Path(args[args.index("--out") + 1]) if "--out" in args else REPO / "dist"
    tarballs = sorted(out.glob("dso-*-linux-x86_64.tar.gz"), key=lambda p: p.stat().st_mtime)
    assert tarballs, f"no tarball in {out}"
    return tarballs[-1]


@pytest.fixture(scope="module")
def releases() -> tuple[Path, Path]:
    """(this build, the same build named as the next release) with their SHA256SUMS beside."""
    current = _build("--no-deb")
    upgrade = _build("--no-deb", "--version-suffix", "next", "--out", str(REPO / ".build/next"))
    return current, upgrade


def _version_of(tarball: Path) -> str:
    match = re.fullmatch(r"dso-(.+)-linux-x86_64\.tar\.gz", tarball.name)
    assert match, tarball.name
    return match.group(1)


# -- the runbooks -----------------------------------------------------------------------------


def runbook(name: str) -> str:
    """The ``sh`` block under ``<!-- runbook: NAME -->`` in docs/operations.md, as written."""
    text = OPERATIONS.read_text()
    match = re.search(rf"<!-- runbook: {re.escape(name)} -->\s*```sh\n(.*?)```", text, re.S)
    assert match, f"docs/operations.md has no runbook {name!r}"
    return match.group(1)


# -- the journey ------------------------------------------------------------------------------


class Journey:
    """The test host plus the waits and figures of the journey."""

    def __init__(self, host: TestHost) -> None:
        self.host = host
        self.figures: dict[str, float] = {}

    def sh(
        self, script: str, *, input: str | None = None, check: bool = True, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        return self.host.sh(script, input=input, check=check, timeout=timeout)

    def dso(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.host.exec("docker", "dso", *args, input=input, check=check, timeout=300)

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> float:
        began = time.monotonic()
        while not check():
            if time.monotonic() - began > timeout:
                pytest.fail(
                    f"timed out after {timeout:.0f} s waiting for {what}\n{self.diagnose()}"
                )
            time.sleep(0.2)
        return time.monotonic() - began

    def healthy(self) -> bool:
        done = self.host.exec(
            "curl", "-fsS", "--max-time", "2", "--unix-socket", "/run/dso/agent.sock",
            "http://health", check=False,
        )  # fmt: skip
        return done.returncode == 0

    def main_pid(self) -> int:
        out = self.host.exec("systemctl", "show", "-p", "MainPID", "--value", "dso-agent")
        return int(out.stdout.strip() or 0)

    def report(self) -> tuple[int, int, str]:
        """(requests answered, failed, last answer) of the looping client."""
        done = self.host.exec("docker", "exec", "shop-client-1", "cat", "/tmp/report", check=False)
        if done.returncode != 0 or not done.stdout.strip():
            return 0, 0, ""
        ok, failed, *last = done.stdout.split()
        return int(ok), int(failed), " ".join(last)

    def failures(self) -> str:
        """The looping client's failed requests, one line each (rotation_support's format)."""
        done = self.host.exec(
            "docker", "exec", "shop-client-1", "cat", "/tmp/failures", check=False
        )  # fmt: skip
        return done.stdout if done.returncode == 0 else ""

    def serving(self) -> set[str]:
        """What each web replica serves."""
        names = self.host.exec(
            "docker", "ps", "--filter", "label=com.docker.compose.service=web",
            "--format", "{{.Names}}",
        ).stdout.split()  # fmt: skip
        answers = set()
        for name in names:
            got = self.host.exec(
                "docker", "exec", name, "wget", "-q", "-O-", "http://127.0.0.1/", check=False
            )
            answers.add(got.stdout.strip() if got.returncode == 0 else f"<{name} down>")
        return answers

    def token_files_readable(self) -> bool:
        names = self.host.exec(
            "docker", "ps", "--filter", "label=com.docker.compose.service=web",
            "--format", "{{.Names}}",
        ).stdout.split()  # fmt: skip
        return bool(names) and all(
            self.host.exec(
                "docker", "exec", name, "sh", "-c", 'test "$(cat "$API_TOKEN_FILE")" = ' + TOKEN,
                check=False,
            ).returncode == 0
            for name in names
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        return json.loads(self.dso("status", "--json").stdout)

    def rotations_of(self, service: str) -> list[dict[str, Any]]:
        """The agent's recent rotations of a service, newest first."""
        recent = self.status()["rotations"]["recent"]
        mine = [r for r in recent if service in (r.get("target") or "")]
        return sorted(mine, key=lambda r: str(r["started_at"]), reverse=True)

    def journal_json(self, *args: str) -> list[dict[str, Any]]:
        out = self.host.exec(
            "journalctl", "-u", "dso-agent", "--no-pager", "-o", "json", *args
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def diagnose(self) -> str:
        return self.host.sh(
            "systemctl status dso-agent --no-pager -n 0 || true; "
            "journalctl -u dso-agent -n 60 --no-pager || true; docker ps -a || true",
            check=False,
        ).stdout


@pytest.fixture(scope="module")
def journey(releases: tuple[Path, Path]) -> Iterator[Journey]:
    host = TestHost(build_image())
    try:
        host.start()
        host.load_image(IMAGE)
        for tarball in releases:
            host.copy_in(tarball, f"/srv/releases/{tarball.parent.name}/{tarball.name}")
            host.copy_in(
                tarball.parent / "SHA256SUMS", f"/srv/releases/{tarball.parent.name}/SHA256SUMS"
            )
        yield Journey(host)
    finally:
        host.stop()


def test_an_operator_installs_runs_upgrades_and_removes_the_host_agent(
    journey: Journey, releases: tuple[Path, Path]
) -> None:
    host = journey.host
    current, upgrade = releases
    version, new_version = _version_of(current), _version_of(upgrade)

    # -- install from the tarball: the checksums first, then the switch ---------------------
    journey.sh(
        f"cd /srv/releases/{current.parent.name} && sha256sum --ignore-missing -c SHA256SUMS"
        f" && tar -xzf {current.name} && sh dso-{version}/install"
    )
    assert version in host.exec("dso", "version").stdout
    assert version in journey.dso("version").stdout

    # -- bootstrap without a terminal: the defaults, no question -----------------------------
    plan = journey.dso("bootstrap", "agent", "--dry-run")
    assert "/etc/dso/dso.yaml" in plan.stdout + plan.stderr
    assert host.exec("test", "-e", "/etc/dso/dso.yaml", check=False).returncode != 0
    journey.dso("bootstrap", "agent")
    again = journey.dso("bootstrap", "agent")
    assert "nothing to do" in (again.stdout + again.stderr).lower()
    journey.sh("sudo docker dso config validate")

    # -- secrets in the host agent's vault (root: /etc/dso/dso.yaml is the config in use) ----
    journey.dso("secret", "set", "shop/site_version", input=CANARY_V1)
    journey.dso("secret", "set", "shop/api_token", input=TOKEN)
    journey.dso("secret", "set", "shop/picky_mode", input="good")

    # -- enable: returns once the agent answers on its socket --------------------------------
    began = time.monotonic()
    journey.dso("system", "enable")
    journey.figures["system enable → healthy (s)"] = time.monotonic() - began
    assert journey.healthy()
    assert host.exec("systemctl", "is-enabled", "dso-agent").stdout.strip() == "enabled"
    assert "running" in journey.dso("system", "status").stdout.lower()

    # The config-change runbook (debounce 2 s) while nothing is managed yet.
    journey.sh(runbook("config-change"))
    assert journey.healthy()

    # -- a compose project under the host agent, a client looping on it ---------------------
    journey.sh("mkdir -p /srv/shop && cat > /srv/shop/compose.yaml", input=COMPOSE)
    journey.sh("cd /srv/shop && docker dso up -d")
    journey.wait("the client to get answers", lambda: journey.report()[0] > 20)
    assert journey.serving() == {CANARY_V1}
    assert journey.token_files_readable()

    # A freshly bootstrapped, healthy host with a project passes doctor cleanly.
    doctor = journey.dso("doctor", "--json", check=False)
    report = json.loads(doctor.stdout)
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert doctor.returncode == 0 and not failed, doctor.stdout

    # -- the secret changes: the agent rotates, no request fails -----------------------------
    failures_before = journey.failures()
    journey.dso("secret", "set", "shop/site_version", input=CANARY_V2)
    journey.figures["change → all replicas serving (s)"] = journey.wait(
        "both replicas to serve the new value", lambda: journey.serving() == {CANARY_V2}, 120
    )
    journey.wait("the client to see it", lambda: journey.report()[2] == CANARY_V2)
    # Never without a serving replica, and not one request cut: under the unit's hardening the
    # agent drains each old replica before it leaves the network (docs/rotation.md, "In-flight
    # requests": host iptables rules, CAP_NET_ADMIN).
    assert journey.failures()[len(failures_before) :] == ""
    rotations = journey.rotations_of("web")
    assert rotations and rotations[0]["status"] == "completed", rotations
    drained = [line for line in host.journal("dso-agent").splitlines() if "drained in" in line]
    assert len(drained) >= 2, host.journal("dso-agent", "-n", "40")

    # -- a rotation that fails its health gate: rolled back, an error with its trace id ------
    journey.dso("secret", "set", "shop/picky_mode", input="bad")

    def picky_failed() -> bool:
        return any(r["status"] in ("failed", "rolled_back") for r in journey.rotations_of("picky"))

    journey.wait("the picky rotation to fail and roll back", picky_failed, 120)
    failed_rotation = journey.rotations_of("picky")[0]
    trace_id = failed_rotation["trace_id"]
    errors = journey.dso("system", "logs", "-p", "err", "-n", "200", "-o", "json").stdout
    error_entries = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    assert error_entries, "no error in the journal after a failed rotation"
    assert all(int(e["PRIORITY"]) <= 3 for e in error_entries), errors
    assert any(e.get("DSO_TRACE_ID") == trace_id for e in error_entries)
    followed = journey.journal_json(f"DSO_TRACE_ID={trace_id}")
    assert len(followed) >= 2 and all(e["DSO_TRACE_ID"] == trace_id for e in followed)
    assert any(e.get("DSO_SERVICE") == "picky" for e in followed)
    rb = journey.sh(
        f"TRACE_ID={shlex.quote(trace_id)}\n" + runbook("rotation-failures"), check=False
    )
    assert trace_id in rb.stdout, rb.stdout + rb.stderr
    journey.dso("secret", "set", "shop/picky_mode", input="good")

    # -- kill -9: systemd restarts it after RestartSec, recovery runs, serving again ---------
    pid = journey.main_pid()
    host.exec("kill", "-9", str(pid))
    began = time.monotonic()
    journey.wait("a new agent", lambda: journey.main_pid() not in (0, pid), 60)
    journey.wait("health after the restart", journey.healthy, 60)
    journey.figures["SIGKILL → serving (s)"] = time.monotonic() - began
    restarted = host.journal("dso-agent", "--since", "-2min")
    assert re.search(r"recover", restarted, re.I), restarted[-3000:]
    assert journey.serving() == {CANARY_V2}

    # -- the socket runbook, as written --------------------------------------------------------
    sock = journey.sh(runbook("socket"))
    assert "srw-rw---- root dso" in sock.stdout and '"status"' in sock.stdout

    # -- a reboot: /run emptied; the agent starts at boot and delivers the files again ------
    before = journey.report()
    began = time.monotonic()
    host.reboot()
    journey.wait("health after the reboot", journey.healthy, 120)
    journey.wait("the web replicas with their files", journey.token_files_readable, 120)
    journey.wait("serving after the reboot", lambda: journey.serving() == {CANARY_V2}, 120)
    journey.figures["reboot → serving with files (s)"] = time.monotonic() - began
    journey.wait("the client to loop again", lambda: journey.report()[0] > 5, 60)
    del before

    # -- upgrade and roll back, with the runbooks -----------------------------------------------
    serve = host.exec(
        "sh", "-c",
        f"cd /srv/releases/{upgrade.parent.name} && "
        "nohup python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 & echo $!",
    ).stdout.strip()  # fmt: skip
    try:
        journey.wait("the release server", lambda: host.exec(
            "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8765/SHA256SUMS", check=False
        ).returncode == 0, 20)  # fmt: skip
        env = f"RELEASE_URL=http://127.0.0.1:8765\nNEW={shlex.quote(new_version)}\n"
        up = journey.sh(env + runbook("upgrade"))
        assert new_version in up.stdout, up.stdout
    finally:
        host.exec("kill", serve, check=False)
    # The builder names the same frozen tree as the next release: its commit stamp tells them apart.
    marker = "+" + new_version.split("+", 1)[1] + ")"
    assert marker in host.exec("dso", "version").stdout
    assert journey.healthy()
    back = journey.sh(runbook("rollback"))
    assert marker not in host.exec("dso", "version").stdout, back.stdout
    assert journey.healthy()
    assert journey.serving() == {CANARY_V2}

    # -- graceful restart runbook, high-memory runbook ------------------------------------------
    journey.sh(runbook("graceful-restart"))
    assert journey.healthy()
    journey.sh(runbook("high-memory"))
    assert journey.healthy()
    assert "max_size: 100Mi" in host.exec("cat", "/etc/dso/dso.yaml").stdout

    # -- disable: stopped and disabled; the containers keep serving with their files --------
    journey.dso("system", "disable")
    assert host.exec("systemctl", "is-active", "dso-agent", check=False).stdout.strip() in (
        "inactive",
        "failed",
    )
    assert (
        host.exec("systemctl", "is-enabled", "dso-agent", check=False).stdout.strip() == "disabled"
    )
    assert journey.token_files_readable()
    assert journey.serving() == {CANARY_V2}

    # -- no value ever reached the journal, the log file, the state or a status --------------
    everything = host.sh(
        "journalctl --no-pager -o json; cat /var/lib/dso/state/*.json; "
        "cat /var/log/dso/* 2>/dev/null; cat ~/dso-backup.json",
        check=False,
    ).stdout
    for canary in (CANARY_V1, CANARY_V2, TOKEN):
        assert canary not in everything

    print("\noperations figures:", file=sys.stderr)
    for name, value in journey.figures.items():
        print(f"  {name}: {value:.2f}", file=sys.stderr)

"""The vault under real processes: concurrent writers lose nothing; a real full disk is survived.

No docker needed, but real subprocesses and (as root) a real tmpfs mount.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

DSO = Path(sys.executable).parent / "dso"
WORKERS = 4
PER_WORKER = 15

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from kernel.paths import local_layout
    from kernel.secret_value import SecretValue
    from kernel.vault import open_local

    worker, go = sys.argv[1], Path(sys.argv[2])
    vault = open_local(local_layout())
    while not go.exists():  # start together, so the writers really overlap
        time.sleep(0.001)
    for index in range(int(sys.argv[3])):
        vault.set(f"worker{worker}/secret{index:02}", SecretValue(f"value-{worker}-{index}"))
    """
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DSO_")}
    environ.pop("XDG_RUNTIME_DIR", None)
    environ["DSO_HOME"] = str(tmp_path / "dso-home")
    return environ


def dso(
    env: dict[str, str], *args: str, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(DSO), *args], input=input, env=env, capture_output=True, timeout=60, cwd=REPO
    )


def expected() -> dict[str, bytes]:
    return {
        f"worker{w}/secret{i:02}": f"value-{w}-{i}".encode()
        for w in range(WORKERS)
        for i in range(PER_WORKER)
    }


def check_all_present(env: dict[str, str]) -> None:
    listed = dso(env, "secret", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {doc["name"]: doc["version"] for doc in json.loads(listed.stdout)}
    assert names == dict.fromkeys(expected(), 1), "a concurrent write was lost"
    for name, value in list(expected().items())[:: PER_WORKER - 1]:
        assert dso(env, "secret", "get", name).stdout == value


def test_four_writer_processes_lose_nothing(env: dict[str, str], tmp_path: Path) -> None:
    assert dso(env, "init").returncode == 0
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(w), str(go), str(PER_WORKER)],
            env=env,
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for w in range(WORKERS)
    ]
    try:
        go.touch()
        for proc in procs:
            _, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr.decode()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    check_all_present(env)


def test_four_concurrent_cli_streams_lose_nothing(env: dict[str, str]) -> None:
    """The same through `dso secret set` with the value on stdin: 60 CLI processes, 4 at a time."""
    assert dso(env, "init").returncode == 0

    def worker(w: int) -> list[int]:
        codes = []
        for i in range(PER_WORKER):
            done = dso(
                env, "secret", "set", f"worker{w}/secret{i:02}", input=b"value-%d-%d\n" % (w, i)
            )
            codes.append(done.returncode)
        return codes

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(worker, range(WORKERS)))
    assert results == [[0] * PER_WORKER] * WORKERS
    check_all_present(env)


def test_a_real_full_disk_exits_8_and_keeps_the_vault(env: dict[str, str], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; run the integration tests as root")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, f"mount failed: {mounted.stderr}"
    try:
        env["DSO_HOME"] = str(mount_point / "dso")
        assert dso(env, "init").returncode == 0
        assert dso(env, "secret", "set", "app/db_password", input=b"old value\n").returncode == 0
        before = (mount_point / "dso" / "vault.enc").read_bytes()
        fill(mount_point / "filler")

        result = dso(env, "secret", "set", "app/db_password", input=b"new value " * 100)
        assert result.returncode == 8, result.stderr
        assert b"no space left on device" in result.stderr
        assert b"the previous file is unchanged" in result.stderr
        assert (mount_point / "dso" / "vault.enc").read_bytes() == before
        leftovers = [p.name for p in (mount_point / "dso").iterdir() if ".tmp-" in p.name]
        assert leftovers == []
        got = dso(env, "secret", "get", "app/db_password")
        assert (got.returncode, got.stdout) == (0, b"old value")

        (mount_point / "filler").unlink()  # space again: writes work again
        assert dso(env, "secret", "set", "app/db_password", input=b"new\n").returncode == 0
        assert dso(env, "secret", "get", "app/db_password").stdout == b"new"
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write to ``path`` until the file system has not one byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (64 * 1024, 4096, 1):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)

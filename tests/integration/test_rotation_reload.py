"""The reload strategy: secret files switch atomically inside the running container, a signal
tells it, and the container is the same one (same id) afterwards."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.injection.atomic_dir import Owner, publish
from kernel.injection.tmpfs import SecretsDir
from kernel.rotation.model import ChangedReference, Changes
from kernel.secret_value import SecretValue
from tests.integration.rotation_support import Scope, engine_factory, scope, wait_for

pytestmark = pytest.mark.integration
__all__ = ["engine_factory", "scope"]

#: Counts SIGHUPs, and reads A and B through one resolution of ..data (the way a reader gets
#: all-or-nothing): a pair from two different versions is recorded in /tmp/mixed.
READER = r"""
mkdir -p /tmp; trap 'echo hup >> /tmp/hups' HUP
s=/run/secrets/dso
while true; do
  d=$(readlink $s/..data)
  if a=$(cat $s/$d/A 2>/dev/null) && b=$(cat $s/$d/B 2>/dev/null); then
    [ "${a%%-*}" = "${b%%-*}" ] || echo "$a $b" >> /tmp/mixed
    echo "$a" > /tmp/last
  fi
  usleep 2000
done
"""


@pytest.fixture
def secrets_dir() -> Iterator[Path]:
    root = Path("/dev/shm") / f"dsotest-{secrets.token_hex(5)}"
    base = root / "secrets"
    SecretsDir(base).prepare()
    try:
        yield base
    finally:
        shutil.rmtree(root, ignore_errors=True)


def files(version: int) -> Changes:
    values = {"A": SecretValue(f"v{version}-a"), "B": SecretValue(f"v{version}-b")}
    refs = tuple(
        ChangedReference(k, f"dsofile://app/{k.lower()}", "file", None, f"local:{version}")
        for k in values
    )
    return Changes(files=values, references=refs)


def test_reload_swaps_files_atomically_and_signals(
    scope: Scope, engine_factory, secrets_dir: Path
) -> None:
    target = secrets_dir / "app" / "web"
    target.parent.mkdir(mode=0o700)
    publish(target, dict(files(1).files), Owner(0, 0))
    container = scope.run(
        "web",
        ["sh", "-c", READER],
        labels={"dso.reload.signal": "SIGHUP"},
        volumes={str(target): {"bind": "/run/secrets/dso", "mode": "ro"}},
        healthcheck={"test": ["CMD-SHELL", "test -s /tmp/last"], "interval": 30 * 10**9},
    )
    wait_for(lambda: scope.exec(container.name, "cat", "/tmp/last") == "v1-a\n")
    engine = engine_factory()

    for version in range(2, 7):
        outcome = engine.rotate(container.name, lambda view, v=version: files(v))
        assert outcome.status == "completed", outcome.error
        assert outcome.plan is not None and outcome.plan.strategy.value == "reload"
        assert "only secret files changed" in outcome.plan.reason

    wait_for(lambda: scope.exec(container.name, "cat", "/tmp/last") == "v6-a\n")
    wait_for(lambda: (scope.exec(container.name, "cat", "/tmp/hups") or "").count("hup") == 5)
    assert scope.exec(container.name, "cat", "/tmp/mixed") is None, "a reader saw a mix"
    assert scope.exec(container.name, "cat", "/run/secrets/dso/B") == "v6-b"
    assert scope.inspect(container.name)["Id"] == container.id
    assert scope.names() == [container.name]
    entries = engine.journal.entries()
    assert [e.strategy for e in entries] == ["reload"] * 5
    assert all(e.new_id is None and e.status == "completed" for e in entries)
    # Only the current version directory is left on the tmpfs.
    assert len([p for p in target.iterdir() if p.name.startswith("..") and not p.is_symlink()]) == 1

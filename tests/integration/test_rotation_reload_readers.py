"""Two files rotated together with ``reload`` while readers inside the container loop over them.

Each reader opens ``A``, does 20 ms of "work", then opens ``B`` (an app parsing its first file
before it reads the second), and counts pairs from two versions (mixed) and files not found:

- ``once`` resolves ``..data`` once per pair and opens ``<that dir>/A`` and ``<that dir>/B``:
  the way docs/rotation.md tells apps to read a set of files. It must never see a mix, nor a
  vanished file: the version a swap replaced stays ``RETIRED_GRACE`` seconds. (When it was
  removed right at the swap, this reader found ``B`` gone in nearly every rotation.)
- ``per_key`` opens ``$s/A`` then ``$s/B`` through the per-key links: a swap between its two
  opens gives it a mixed pair, which the docs say can happen; its counts are printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.injection.atomic_dir import RETIRED_GRACE, Owner, publish
from tests.integration.rotation_support import Scope, engine_factory, scope, wait_for
from tests.integration.test_rotation_reload import files, secrets_dir

pytestmark = pytest.mark.integration
__all__ = ["engine_factory", "scope", "secrets_dir"]

ROTATIONS = 10

#: Both readers in the background; PID 1's shell takes the SIGHUPs. Each writes
#: "pairs mixed missing" to /tmp/<reader> after every pair; all stop on /tmp/stop.
READERS = r"""
mkdir -p /tmp; s=/run/secrets/dso
count() {  # count <reader> <first file> <second file>: one pair read, classified
  if a=$(cat "$2" 2>/dev/null) && usleep 20000 && b=$(cat "$3" 2>/dev/null); then
    [ "${a%%-*}" = "${b%%-*}" ] || mixed=$((mixed+1))
  else missing=$((missing+1)); fi
  n=$((n+1)); echo "$n $mixed $missing" > /tmp/$1.tmp && mv /tmp/$1.tmp /tmp/$1
}
once() { n=0 mixed=0 missing=0; while [ ! -f /tmp/stop ]; do
  d=$(readlink $s/..data); count once "$s/$d/A" "$s/$d/B"; done; }
per_key() { n=0 mixed=0 missing=0; while [ ! -f /tmp/stop ]; do
  count per_key "$s/A" "$s/B"; done; }
trap 'echo hup >> /tmp/hups' HUP
once & per_key &
while true; do usleep 100000; done
"""


def counts(scope: Scope, container: str, reader: str) -> tuple[int, int, int]:
    text = scope.exec(container, "cat", f"/tmp/{reader}") or "0 0 0"
    pairs, mixed, missing = map(int, text.split())
    return pairs, mixed, missing


def test_a_reader_resolving_data_once_never_sees_a_mix_or_a_vanished_file(
    scope: Scope, engine_factory, secrets_dir: Path
) -> None:
    target = secrets_dir / "app" / "web"
    target.parent.mkdir(mode=0o700)
    publish(target, dict(files(1).files), Owner(0, 0))
    container = scope.run(
        "web",
        ["sh", "-c", READERS],
        labels={"dso.reload.signal": "SIGHUP"},
        volumes={str(target): {"bind": "/run/secrets/dso", "mode": "ro"}},
        healthcheck={"test": ["CMD-SHELL", "test -s /tmp/once"], "interval": 30 * 10**9},
    )
    wait_for(
        lambda: (
            counts(scope, container.name, "once")[0] and counts(scope, container.name, "per_key")[0]
        )
    )
    engine = engine_factory()

    elapsed = []
    for version in range(2, 2 + ROTATIONS):
        outcome = engine.rotate(container.name, lambda view, v=version: files(v))
        assert outcome.status == "completed", outcome.error
        assert outcome.plan is not None and outcome.plan.strategy.value == "reload"
        elapsed.append(outcome.elapsed)
        # What the swap replaced is gone when the rotation returns: one version on the tmpfs.
        assert len([p for p in target.iterdir() if p.is_dir() and not p.is_symlink()]) == 1

    scope.exec(container.name, "touch", "/tmp/stop")
    wait_for(
        lambda: (scope.exec(container.name, "cat", "/tmp/hups") or "").count("hup") == ROTATIONS
    )
    assert scope.exec(container.name, "cat", "/run/secrets/dso/B") == f"v{1 + ROTATIONS}-b"

    once = counts(scope, container.name, "once")
    per_key = counts(scope, container.name, "per_key")
    print(
        f"\n{ROTATIONS} reload rotations, {min(elapsed):.2f}-{max(elapsed):.2f} s each "
        f"(grace {RETIRED_GRACE} s); pairs/mixed/missing: resolved once {once}, per-key {per_key}"
    )
    assert once[0] >= 100 and per_key[0] >= 100, "the readers hardly ran"
    assert once[1:] == (0, 0), f"resolving ..data once: {once[1]} mixed, {once[2]} missing"
    assert per_key[2] == 0, "a per-key link never names a missing file"
    # The rotation waits out the grace before it ends (docs/rotation.md).
    assert min(elapsed) >= RETIRED_GRACE - 0.05

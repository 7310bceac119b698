"""label_fetch: what changed for a container, from its dso.refs/dso.versions labels."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from kernel.compose.confighash import HashUpdate
from kernel.containers.view import ContainerView
from kernel.errors import RotationError, SecretNotFoundError
from kernel.injection.resolver import Outcome, Resolved
from kernel.reference import SecretReference
from kernel.rotation.labels import NO_PROJECT, MemoResolver, label_fetch
from kernel.secret_value import SecretValue
from tests.unit.rotation_fixtures import inspect_doc


class FakeResolver:
    def __init__(self, versions: dict[str, int], missing: set[str] | None = None) -> None:
        self.versions = versions
        self.missing = missing or set()
        self.calls: list[list[str]] = []

    def provider_of(self, ref: SecretReference) -> str:
        return ref.provider or "local"

    def resolve(self, refs: Sequence[SecretReference]) -> dict[SecretReference, Outcome]:
        self.calls.append([ref.path for ref in refs])
        out: dict[SecretReference, Outcome] = {}
        for ref in refs:
            if ref.path in self.missing:
                out[ref] = SecretNotFoundError(f"{ref}: not found")
            else:
                version = self.versions[ref.path]
                out[ref] = Resolved(SecretValue(f"{ref.path}-v{version}"), str(version), "local")
        return out


def view(refs: dict[str, str], versions: dict[str, str]) -> ContainerView:
    labels = {"dso.refs": json.dumps(refs), "dso.versions": json.dumps(versions)}
    return ContainerView(inspect_doc(Config__Labels=labels))


REFS = {"DB": "dso://app/db", "DB_COPY": "dso://app/db", "KEY_FILE": "dsofile://app/key"}


def test_only_moved_versions_are_changes() -> None:
    resolver = FakeResolver({"app/db": 2, "app/key": 1})
    changes = label_fetch(resolver)(
        view(REFS, {"DB": "local:1", "DB_COPY": "local:1", "KEY_FILE": "local:1"})
    )
    assert resolver.calls == [["app/db", "app/key"]]  # one batch, references deduplicated
    assert [r.variable for r in changes.references] == ["DB", "DB_COPY"]
    assert changes.references[0].to_dict() == {
        "variable": "DB",
        "reference": "dso://app/db",
        "delivery": "env",
        "from": "local:1",
        "to": "local:2",
    }
    assert set(changes.env) == {"DB", "DB_COPY"} and changes.files == {}
    assert changes.env["DB"] == SecretValue("app/db-v2")
    assert changes.unchanged == ("dsofile://app/key",)
    assert json.loads(changes.labels["dso.versions"]) == {
        "DB": "local:2",
        "DB_COPY": "local:2",
        "KEY_FILE": "local:1",
    }
    assert "app/db-v2" not in repr(changes)


def test_nothing_moved_means_no_changes_unless_forced() -> None:
    resolver = FakeResolver({"app/db": 1, "app/key": 1})
    current = view(REFS, {"DB": "local:1", "DB_COPY": "local:1", "KEY_FILE": "local:1"})
    assert not label_fetch(resolver)(current)
    forced = label_fetch(resolver, force=True)(current)
    assert len(forced.references) == 3
    assert set(forced.files) == {"KEY_FILE"}


def test_no_labels_means_nothing_to_do() -> None:
    assert not label_fetch(FakeResolver({}))(ContainerView(inspect_doc()))


def test_a_missing_secret_is_raised_naming_the_reference() -> None:
    resolver = FakeResolver({"app/key": 1}, missing={"app/db"})
    with pytest.raises(SecretNotFoundError, match="dso://app/db"):
        label_fetch(resolver)(view(REFS, {}))


def test_a_broken_label_is_a_rotation_error() -> None:
    broken = ContainerView(inspect_doc(Config__Labels={"dso.refs": "[1, 2]"}))
    with pytest.raises(RotationError, match=r"dso\.refs"):
        label_fetch(FakeResolver({}))(broken)


def test_one_fetch_for_every_replica_of_a_service() -> None:
    resolver = FakeResolver({"app/db": 2, "app/key": 2})
    memo = MemoResolver(resolver)
    replicas = [view(REFS, {"DB": "local:1"}), view({"DB": "dso://app/db"}, {"DB": "local:1"})]
    assert memo.prefetch(replicas) == 2
    fetch = label_fetch(memo)
    first, second = (fetch(replica) for replica in replicas)
    assert resolver.calls == [["app/db", "app/key"]]
    assert first.env["DB"] == second.env["DB"] == SecretValue("app/db-v2")


class FakeHasher:
    name = "shop"

    def update(self, service: str, labels: object, values: dict) -> HashUpdate:
        assert service == "web" and len(values) == 2
        return HashUpdate({"com.docker.compose.config-hash": "h2"}, "renewed", kept_by_up=True)


def test_compose_containers_get_the_renewed_hash_or_a_note() -> None:
    compose = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}
    labels = {"dso.refs": json.dumps(REFS), "dso.versions": "{}", **compose}
    container = ContainerView(inspect_doc(Config__Labels=labels))
    resolver = FakeResolver({"app/db": 2, "app/key": 1})

    with_project = label_fetch(resolver, hasher=FakeHasher())(container)  # type: ignore[arg-type]
    assert with_project.labels["com.docker.compose.config-hash"] == "h2"
    assert with_project.notes == ("renewed",)
    without = label_fetch(resolver)(container)
    assert "com.docker.compose.config-hash" not in without.labels
    assert without.notes == (NO_PROJECT,)
    other = {**labels, "com.docker.compose.project": "other"}
    elsewhere = ContainerView(inspect_doc(Config__Labels=other))
    assert label_fetch(resolver, hasher=FakeHasher())(elsewhere).notes == (NO_PROJECT,)  # type: ignore[arg-type]

"""ComposeHasher: the compose config hash a rotated container must carry, and when it must not
be renewed (a project that changed since the container was created)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel.compose.args import ComposeArgs
from kernel.compose.confighash import ComposeHasher
from kernel.compose.files import ProjectFiles
from kernel.compose.inject import Project
from kernel.compose.rewrite import rewrite_model
from kernel.compose.scan import scan_model, unescape
from kernel.errors import ComposeError
from kernel.injection.resolver import Resolved
from kernel.labels import COMPOSE_HASH_LABEL
from kernel.secret_value import SecretValue

FIXTURES = Path(__file__).parent / "fixtures" / "compose"
BASE = Path("/dev/shm/dso-test-base")


def project() -> Project:
    model = json.loads((FIXTURES / "shop" / "config.json").read_text())
    files = ProjectFiles((Path("/srv/shop/compose.yaml"),), Path("/srv/shop"))
    return Project(ComposeArgs(), Path("/srv/shop"), {}, model, files)


def values(version: str) -> dict[Any, Resolved]:
    scan = scan_model(project().model)
    return {
        r: Resolved(SecretValue(f"value-{version}"), version, "local") for r in scan.references()
    }


def labels_from_up(version: str) -> dict[str, str]:
    """The labels `docker dso up` gave the web container at ``version``."""
    shop = project()
    scan = scan_model(shop.model)
    dirs = {s: BASE / "shop" / s for s in scan.services}
    rewritten = rewrite_model(shop.model, scan, values(version), dirs)
    labels = rewritten.model["services"]["web"]["labels"]
    return {k: unescape(v) for k, v in labels.items()}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = []

    def service_hash(
        name: str, wdir: Path, args: Any, model: Any, secret_env: Any, service: str, **kw: Any
    ) -> str:
        recorded.append({"model": model, "env": secret_env, "service": service})
        return "hash-" + model["services"][service]["labels"]["dso.versions"]

    monkeypatch.setattr("kernel.compose.confighash.service_hash", service_hash)
    return recorded


def test_the_hash_of_the_model_up_would_build_with_the_new_values(calls: list[dict]) -> None:
    hasher = ComposeHasher(project(), BASE)

    update = hasher.update("web", labels_from_up("1"), values("2"))

    assert update.kept_by_up and "config hash renewed" in update.note
    (call,) = calls
    web = call["model"]["services"]["web"]
    assert json.loads(unescape(web["labels"]["dso.versions"]))["DB_PASSWORD"] == "local:2"
    assert update.labels == {COMPOSE_HASH_LABEL: "hash-" + web["labels"]["dso.versions"]}
    # The value only travels in compose's environment, as for `up`.
    assert "value-2" not in json.dumps(call["model"])
    assert [v.reveal_text() for v in call["env"].values()] == ["value-2"]
    # Replicas share one compose call.
    hasher.update("web", labels_from_up("1"), values("2"))
    assert len(calls) == 1


def test_a_changed_project_keeps_the_old_hash(calls: list[dict]) -> None:
    edited = project()
    edited.model["services"]["web"]["labels"] = {"team": "blue"}

    update = ComposeHasher(edited, BASE).update("web", labels_from_up("1"), values("2"))

    assert not update.kept_by_up and update.labels == {}
    assert "will recreate the new container" in update.note
    assert "is not the one this container was created from" in update.note
    assert calls == []


def test_other_references_or_a_failing_compose_keep_the_old_hash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    labels = labels_from_up("1")
    moved = {**labels, "dso.refs": json.dumps({"DB_PASSWORD": "dso://app/other"})}
    update = ComposeHasher(project(), BASE).update("web", moved, values("2"))
    assert "uses other secret references" in update.note and update.labels == {}

    def broken(*args: Any, **kwargs: Any) -> str:
        raise ComposeError("docker compose config --hash=web failed (exit status 1)")

    monkeypatch.setattr("kernel.compose.confighash.service_hash", broken)
    update = ComposeHasher(project(), BASE).update("web", labels, values("2"))
    assert not update.kept_by_up and "exit status 1" in update.note

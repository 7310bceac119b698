"""Scanning and rewriting a captured `docker compose config --format json` model.

Fixtures: tests/unit/fixtures/compose/<name>/compose.yaml and the config.json compose 2.40
printed for it (note that compose prints every literal `$` as `$$`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel.compose.rewrite import PLACEHOLDER_PREFIX, rewrite_model
from kernel.compose.scan import (
    DEFAULT_MOUNT,
    Scan,
    escape,
    parse_user,
    scan_model,
    unescape,
)
from kernel.errors import ComposeError, SecretReferenceError
from kernel.injection.atomic_dir import Owner
from kernel.injection.resolver import Resolved
from kernel.reference import parse_reference
from kernel.secret_value import SecretValue

FIXTURES = Path(__file__).parent / "fixtures" / "compose"
CANARY = "CANARY-4f1c$9e"  # a `$` too: it must not be escaped, nor interpolated


def model(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name / "config.json").read_text())
    return doc


def resolved(scan: Scan) -> dict[Any, Resolved]:
    return {
        ref: Resolved(SecretValue(f"{CANARY}:{ref.path}"), "7", "local")
        for ref in scan.references()
    }


def rewrite(name: str = "shop") -> tuple[dict[str, Any], Scan, Any]:
    original = model(name)
    scan = scan_model(original)
    dirs = {s: Path(f"/dev/shm/dso-0/secrets/{name}/{s}") for s in scan.services}
    return original, scan, rewrite_model(original, scan, resolved(scan), dirs, token="t0k")


def test_scan_finds_references_in_map_and_list_forms() -> None:
    scan = scan_model(model("shop"))
    assert scan.project == "shop"
    assert list(scan.services) == ["web", "worker"]
    web, worker = scan.services["web"], scan.services["worker"]
    assert web.env == {"DB_PASSWORD": parse_reference("dso://app/db_password")}
    assert web.files == {"API_KEY_FILE": parse_reference("dsofile://app/api_key")}
    assert web.file_path("API_KEY_FILE") == f"{DEFAULT_MOUNT}/API_KEY_FILE"
    assert web.owner == Owner(0, 0)
    assert worker.mount_path == "/run/secrets/worker"
    assert worker.owner == Owner(1000, 1000)
    assert [str(r) for r in scan.references()] == [
        "dso://app/db_password",
        "dsofile://app/api_key",
        "dsofile://app/token",
    ]
    assert scan.problems == []


def test_env_references_become_placeholders_and_values_stay_out_of_the_model() -> None:
    original, _scan, result = rewrite()
    web = result.model["services"]["web"]
    assert web["environment"]["DB_PASSWORD"] == "${" + PLACEHOLDER_PREFIX + "t0k_1}"
    # The same reference in another service shares the placeholder (one value, one variable).
    assert result.model["services"]["worker"]["environment"]["DB_URL"] == "${DSO_SECRET_t0k_1}"
    assert list(result.environment) == ["DSO_SECRET_t0k_1"]
    assert result.environment["DSO_SECRET_t0k_1"].reveal_text() == f"{CANARY}:app/db_password"
    text = json.dumps(result.model)
    assert "CANARY" not in text
    assert original == model("shop"), "the input model is not modified"


def test_file_references_become_paths_with_a_read_only_tmpfs_mount() -> None:
    _original, _scan, result = rewrite()
    web = result.model["services"]["web"]
    assert web["environment"]["API_KEY_FILE"] == "/run/secrets/dso/API_KEY_FILE"
    assert web["volumes"][0]["target"] == "/data", "existing mounts are kept, in order"
    assert web["volumes"][-1] == {
        "type": "bind",
        "source": "/dev/shm/dso-0/secrets/shop/web",
        "target": "/run/secrets/dso",
        "read_only": True,
        "bind": {"create_host_path": False},
    }
    worker = result.model["services"]["worker"]
    assert worker["environment"]["TOKEN"] == "/run/secrets/worker/TOKEN"
    assert worker["volumes"][-1]["target"] == "/run/secrets/worker"


def test_labels_record_references_and_versions_never_values() -> None:
    _original, _scan, result = rewrite()
    labels = result.model["services"]["web"]["labels"]
    assert labels["team"] == "shop"
    assert json.loads(unescape(labels["dso.refs"])) == {
        "API_KEY_FILE": "dsofile://app/api_key",
        "DB_PASSWORD": "dso://app/db_password",
    }
    assert json.loads(unescape(labels["dso.versions"])) == {
        "API_KEY_FILE": "local:7",
        "DB_PASSWORD": "local:7",
    }


def test_services_without_references_are_untouched_byte_for_byte() -> None:
    original, _scan, result = rewrite()
    assert json.dumps(result.model["services"]["cache"]) == json.dumps(
        original["services"]["cache"]
    )
    for key in original:
        if key != "services":
            assert json.dumps(result.model[key]) == json.dumps(original[key])
    assert list(result.model["services"]) == list(original["services"])


def test_dollar_signs_keep_compose_escaping_and_what_dso_writes_is_escaped() -> None:
    original, _scan, result = rewrite()
    web = result.model["services"]["web"]
    # Compose printed the user's literal `$` as `$$`: kept as is, so its second pass yields `$`.
    assert original["services"]["web"]["environment"]["PRICE"] == "5$$"
    assert web["environment"]["PRICE"] == "5$$"
    assert web["command"] == ["sh", "-c", "echo $$HOME"]
    # A reference holding a `$` is read unescaped and written back escaped.
    doc = model("shop")
    doc["services"]["web"]["environment"]["ODD"] = "dsofile://app/we$$ird"
    scan = scan_model(doc)
    assert str(scan.services["web"].files["ODD"]) == "dsofile://app/we$ird"
    dirs = {"web": Path("/dev/shm/a$b/web"), "worker": Path("/dev/shm/w")}
    out = rewrite_model(doc, scan, resolved(scan), dirs, token="x")
    labels = out.model["services"]["web"]["labels"]
    assert '"dsofile://app/we$$ird"' in labels["dso.refs"]
    assert out.model["services"]["web"]["volumes"][-1]["source"] == "/dev/shm/a$$b/web"


@pytest.mark.parametrize(
    ("text", "escaped"), [("a$b", "a$$b"), ("$$", "$$$$"), ("none", "none"), ("${X}", "$${X}")]
)
def test_escape_round_trips(text: str, escaped: str) -> None:
    assert escape(text) == escaped
    assert unescape(escape(text)) == text


def test_each_bad_input_is_a_problem_naming_service_and_variable() -> None:
    scan = scan_model(model("bad"), image_user=lambda image: None)
    found = {(p.service, p.variable, type(p.error).__name__) for p in scan.problems}
    assert found == {
        ("api", "EMPTY_PATH", "SecretReferenceError"),
        ("api", "BAD_VERSION", "SecretReferenceError"),
        ("api", "QUESTION", "SecretReferenceError"),
        ("files", "A.B", "ComposeError"),  # not a POSIX name: shells drop it
        ("files", "A:B", "ComposeError"),
        ("files", None, "ComposeError"),  # user: app is a name
        ("mounted", None, "ComposeError"),  # /run/secrets/dso is already a mount
        ("badpath", None, "ComposeError"),  # dso.secrets.path is relative
    }
    by_key = {(p.service, p.variable): p for p in scan.problems}
    assert "the secret path is empty" in by_key["api", "EMPTY_PATH"].message
    assert "the variable name 'A:B' contains ':'" in by_key["files", "A:B"].message
    assert "user: 'app'" in by_key["files", None].message
    assert "already a mount" in by_key["mounted", None].message
    assert by_key["api", "QUESTION"].reference == "dso://app/db?x"
    assert isinstance(by_key["api", "BAD_VERSION"].error, SecretReferenceError)
    # The good reference of the same service is still found.
    assert scan.services["api"].env == {"GOOD": parse_reference("dso://app/db")}


def test_without_user_the_image_user_owns_the_files() -> None:
    doc = model("shop")
    asked: list[str] = []

    def image_user(image: str) -> str | None:
        asked.append(image)
        return "65532"

    scan = scan_model(doc, image_user)
    assert scan.services["web"].owner == Owner(65532, 0)
    assert scan.services["worker"].owner == Owner(1000, 1000), "user: wins over the image"
    assert asked == ["dso-test/busybox:1"]
    named = scan_model(doc, lambda image: "postgres")
    assert named.services["web"].owner is None
    assert "the image's USER (dso-test/busybox:1) 'postgres'" in named.problems[0].message


@pytest.mark.parametrize(
    ("user", "owner"),
    [
        ("1000", Owner(1000, 0)),
        ("1000:1001", Owner(1000, 1001)),
        ("root", Owner(0, 0)),
        ("root:50", Owner(0, 50)),
        ("0:root", Owner(0, 0)),
    ],
)
def test_numeric_users(user: str, owner: Owner) -> None:
    assert parse_user(user) == owner


@pytest.mark.parametrize("user", ["app", "1000:staff", ":1", ""])
def test_names_are_refused(user: str) -> None:
    with pytest.raises(ValueError, match="name cannot be resolved"):
        parse_user(user)


def test_compose_error_is_a_config_error() -> None:
    assert ComposeError("x").exit_code == 3


def test_config_hash_label_ignores_values_placeholders_and_versions_only() -> None:
    original, scan, result = rewrite()
    label = result.model["services"]["web"]["labels"]["dso.config-hash"]
    assert len(label) == 32 and "worker" in result.model["services"]
    other_values = {
        ref: Resolved(SecretValue("another value"), "8", "local") for ref in scan.references()
    }
    dirs = {s: Path(f"/dev/shm/dso-0/secrets/shop/{s}") for s in scan.services}
    again = rewrite_model(original, scan, other_values, dirs, token="other")
    assert again.model["services"]["web"]["labels"]["dso.config-hash"] == label
    # Anything else in the service changes it, the secrets directory included.
    edited = model("shop")
    edited["services"]["web"]["labels"] = {"team": "other"}
    changed = rewrite_model(edited, scan_model(edited), other_values, dirs)
    assert changed.model["services"]["web"]["labels"]["dso.config-hash"] != label
    moved = {s: Path(f"/dev/shm/elsewhere/{s}") for s in scan.services}
    relocated = rewrite_model(original, scan, other_values, moved)
    assert relocated.model["services"]["web"]["labels"]["dso.config-hash"] != label

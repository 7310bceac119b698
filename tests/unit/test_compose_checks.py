"""What `up` and `validate` refuse before anything is fetched: variable names a shell drops,
secret directories over the container's own /dev, /proc and /sys; and which services
`up SERVICE…` starts, so that only their references have to resolve."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.compose.args import UpSelection, split_args, up_selection
from kernel.compose.inject import started_services
from kernel.compose.scan import env_name_problem, scan_model
from kernel.errors import ComposeError
from kernel.labels import MOUNT_LABEL


def service(env: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"image": "dso-test/busybox:1", "environment": env, **extra}


def project(**services: dict[str, Any]) -> dict[str, Any]:
    return {"name": "shop", "services": services}


# -- variable names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("1BAD", "starts with a digit"),
        ("ÜNI", "contains 'Ü'"),
        ("A-B", "contains '-'"),
        ("DB.PASSWORD", "contains '.'"),
    ],
)
def test_names_a_shell_drops_are_refused_with_the_reason(name: str, why: str) -> None:
    error = env_name_problem(name)
    assert isinstance(error, ComposeError)
    assert error.message.startswith(f"the variable name {name!r} {why}: shells drop")
    assert error.hint and "letters, digits and _" in error.hint


@pytest.mark.parametrize("name", ["_OK", "A1", "DB_PASSWORD_FILE", "x"])
def test_posix_names_are_accepted(name: str) -> None:
    assert env_name_problem(name) is None


@pytest.mark.parametrize("scheme", ["dso", "dsofile"])
def test_the_scan_up_and_validate_share_refuses_bad_names(scheme: str) -> None:
    env = {"1BAD": f"{scheme}://app/a", "ÜNI": f"{scheme}://app/b", "_OK": f"{scheme}://app/c"}
    scan = scan_model(project(api=service(env)))

    refused = {p.variable: p.message for p in scan.problems}
    assert set(refused) == {"1BAD", "ÜNI"}
    assert "starts with a digit" in refused["1BAD"] and "contains 'Ü'" in refused["ÜNI"]
    # Only the good name is delivered; the bad ones still show as written (validate lists them).
    assert set(scan.services["api"].references) == {"_OK"}
    assert set(scan.services["api"].written) == set(env)


def test_variables_without_references_are_not_dsos_business() -> None:
    scan = scan_model(project(api=service({"1PLAIN": "x", "OK": "dso://app/a"})))
    assert scan.problems == []


# -- dso.secrets.path ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "inside"),
    [("/dev/x", "/dev"), ("/proc/foo", "/proc"), ("/sys", "/sys"), ("/dev", "/dev")],
)
def test_a_secrets_path_over_system_directories_is_refused(path: str, inside: str) -> None:
    api = service({"KEY": "dsofile://app/key"}, labels={MOUNT_LABEL: path})
    scan = scan_model(project(api=api))

    (problem,) = scan.problems
    assert problem.service == "api"
    assert f"label {MOUNT_LABEL}={path!r} is inside {inside}" in problem.message
    assert problem.error.hint == "choose a directory of its own, e.g. /run/secrets/app"


@pytest.mark.parametrize("path", ["/run/secrets/app", "/devices", "/system/secrets"])
def test_other_absolute_directories_are_accepted(path: str) -> None:
    api = service({"KEY": "dsofile://app/key"}, labels={MOUNT_LABEL: path})
    scan = scan_model(project(api=api))
    assert scan.problems == []
    assert scan.services["api"].file_path("KEY") == f"{path}/KEY"


# -- up SERVICE… -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ("up -d", UpSelection()),
        ("up -d web", UpSelection(("web",))),
        ("up -f c.yml --scale web=2 -t 5 --pull never web worker", UpSelection(("web", "worker"))),
        ("up --timeout=5 --attach web -dt 3 api", UpSelection(("api",))),
        ("up -t5 --no-deps --exit-code-from web web", UpSelection(("web",), no_deps=True)),
        ("up --wait --wait-timeout 30 -p x db", UpSelection(("db",))),
    ],
)
def test_up_selection_finds_the_service_names(argv: str, expected: UpSelection) -> None:
    rest = split_args(argv.split()[1:]).rest
    assert up_selection(rest) == expected


DEPS = project(
    a=service({"X": "dso://app/x"}, depends_on={"db": {"condition": "service_started"}}),
    b=service({"Y": "dso://app/missing"}),
    db=service({}, depends_on={"cache": {}}),
    cache=service({}),
)


def test_up_starts_the_named_services_and_their_dependencies() -> None:
    assert started_services(DEPS, UpSelection(("a",))) == {"a", "db", "cache"}
    assert started_services(DEPS, UpSelection(("a",), no_deps=True)) == {"a"}
    assert started_services(DEPS, UpSelection(("b", "db"))) == {"b", "db", "cache"}


def test_without_names_or_with_an_unknown_name_every_service_counts() -> None:
    assert started_services(DEPS, UpSelection()) is None
    assert started_services(DEPS, UpSelection(("a", "nope"))) is None


def test_the_scan_of_the_started_services_ignores_the_others_problems() -> None:
    scan = scan_model(project(a=service({"X": "dso://app/x"}), b=service({"1BAD": "dso://app/y"})))
    assert [p.service for p in scan.problems] == ["b"]

    only_a = scan.only(started_services(DEPS, UpSelection(("a",))) or ())
    assert list(only_a.services) == ["a"] and only_a.problems == []
    assert only_a.project == "shop"

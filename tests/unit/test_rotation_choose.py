"""Which strategy ``auto`` picks, and which explicit choices are refused (a table)."""

from __future__ import annotations

import pytest

from kernel.containers.view import ContainerView
from kernel.errors import UsageError
from kernel.rotation.choose import choose_strategy, exclusive_resources
from kernel.rotation.states import Strategy
from tests.unit.rotation_fixtures import inspect_doc

PORT = {"HostConfig__PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}}
EPHEMERAL = {"HostConfig__PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": ""}]}}
STATIC_IP = {
    "NetworkSettings__Networks__appnet__IPAMConfig": {"IPv4Address": "172.20.0.10"},
}
VOLUME = {
    "Mounts": [
        {"Type": "volume", "Name": "pgdata", "Destination": "/var/lib/pg", "RW": True},
    ],
    "HostConfig__Binds": ["pgdata:/var/lib/pg"],
}
RO_VOLUME = {
    "Mounts": [{"Type": "volume", "Name": "assets", "Destination": "/assets", "RW": False}],
    "HostConfig__Binds": ["assets:/assets:ro"],
}
ANON_VOLUME = {
    "Mounts": [{"Type": "volume", "Name": "f" * 64, "Destination": "/data", "RW": True}],
}
HOST_NET = {"HostConfig__NetworkMode": "host", "NetworkSettings__Networks": {}}
RELOADS = {"Config__Labels": {"dso.reload.signal": "SIGHUP"}}
MOUNT = "Config__Labels"

# (case, inspect patch, kwargs, expected strategy, words expected in the reason)
AUTO_CASES = [
    ("plain", {}, {}, "rolling", "zero downtime"),
    ("ephemeral port", EPHEMERAL, {}, "rolling", "overlap"),
    ("fixed host port", PORT, {}, "restart", "published host port 127.0.0.1:8080->80/tcp"),
    ("static ip", STATIC_IP, {}, "restart", "static address appnet:172.20.0.10"),
    ("named volume", VOLUME, {}, "restart", "volume pgdata at /var/lib/pg"),
    ("shared volume", VOLUME, {"shared_volumes": {"pgdata"}}, "rolling", "overlap"),
    ("read-only volume", RO_VOLUME, {}, "rolling", "overlap"),
    ("anonymous volume", ANON_VOLUME, {}, "restart", "anonymous volume"),
    ("host network", HOST_NET, {}, "restart", "host networking"),
    (
        "files + reload label",
        RELOADS,
        {"files_changed": True, "env_changed": False, "has_secret_files": True},
        "reload",
        "SIGHUP",
    ),
    (
        "env + reload label",
        RELOADS,
        {"files_changed": True, "env_changed": True, "has_secret_files": True},
        "rolling",
        "overlap",
    ),
    (
        "files, no reload label",
        {},
        {"files_changed": True, "has_secret_files": True},
        "rolling",
        "",
    ),
    (
        "label strategy",
        {"Config__Labels": {"dso.strategy": "restart"}},
        {},
        "restart",
        "label dso.strategy restart",
    ),
    (
        "shared-volumes label",
        {**VOLUME, "Config__Labels": {"dso.shared-volumes": "pgdata"}},
        {},
        "rolling",
        "overlap",
    ),
]


@pytest.mark.parametrize(
    ("patch", "kwargs", "expected", "words"),
    [case[1:] for case in AUTO_CASES],
    ids=[case[0] for case in AUTO_CASES],
)
def test_auto_choice(patch: dict, kwargs: dict, expected: str, words: str) -> None:
    args = {"env_changed": True, "files_changed": False, "has_secret_files": False, **kwargs}
    choice = choose_strategy(
        ContainerView(inspect_doc(**patch)), flag=None, configured="auto", **args
    )
    assert choice.strategy == Strategy(expected)
    assert words in choice.reason


def test_flag_beats_label_beats_config() -> None:
    view = ContainerView(inspect_doc(Config__Labels={"dso.strategy": "restart"}))
    common = {"env_changed": True, "files_changed": False, "has_secret_files": False}
    assert choose_strategy(view, flag="none", configured="rolling", **common).source == "flag"
    label = choose_strategy(view, flag=None, configured="rolling", **common)
    assert (label.strategy, label.source) == (Strategy.RESTART, "label")
    plain = ContainerView(inspect_doc())
    config = choose_strategy(plain, flag=None, configured="restart", **common)
    assert (config.strategy, config.source) == (Strategy.RESTART, "config")


@pytest.mark.parametrize(
    ("patch", "flag", "kwargs", "message"),
    [
        (PORT, "rolling", {}, "cannot run two copies"),
        (STATIC_IP, "rolling", {}, "static address"),
        ({}, "reload", {"env_changed": True}, "cannot change environment"),
        ({}, "reload", {"files_changed": True, "env_changed": False}, "has none"),
        ({"Config__Labels": {"dso.strategy": "bluegreen"}}, None, {}, "unknown strategy"),
    ],
    ids=["rolling+port", "rolling+ip", "reload+env", "reload no files", "bad label"],
)
def test_refused_choices(patch: dict, flag: str | None, kwargs: dict, message: str) -> None:
    args = {"env_changed": False, "files_changed": False, "has_secret_files": False, **kwargs}
    with pytest.raises(UsageError, match=message):
        choose_strategy(ContainerView(inspect_doc(**patch)), flag=flag, configured="auto", **args)


def test_explicit_rolling_with_a_volume_is_allowed_but_said() -> None:
    view = ContainerView(inspect_doc(**VOLUME))
    choice = choose_strategy(
        view,
        flag="rolling",
        configured="auto",
        env_changed=True,
        files_changed=False,
        has_secret_files=False,
    )
    assert choice.strategy is Strategy.ROLLING
    assert "share volume pgdata" in choice.reason


def test_exclusive_resources_lists_everything() -> None:
    view = ContainerView(inspect_doc(**PORT, **STATIC_IP, **VOLUME))
    assert len(exclusive_resources(view)) == 3

"""The doctor's host checks with faked inputs: Docker, Compose, configuration, directories,
systemd and the secrets tmpfs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kernel.doctor import Completed, Status
from kernel.errors import DockerUnavailableError
from kernel.paths import Layout, agent_layout, local_layout
from tests.unit.doctor_support import CONFIG, FakeRunner, check, home, make_context

__all__ = ["home"]


# -- Docker and Compose -------------------------------------------------------------------------


def _unreachable() -> tuple[str, dict[str, object]]:
    raise DockerUnavailableError(
        "Docker daemon unreachable at unix:///nowhere.sock: No such file or directory",
        hint="start Docker",
    )


def test_an_unreachable_daemon_fails_with_its_reason_and_docker_version_is_not_checked(
    home: Layout,
) -> None:
    ctx = make_context(home, daemon_version=_unreachable)
    status, finding, _, fix = check(ctx, "docker.reachable")
    assert status is Status.FAIL
    assert "unix:///nowhere.sock" in finding
    assert fix == "start Docker"
    status, finding, _, fix = check(ctx, "docker.version")
    assert status is Status.WARN
    assert finding == "not checked: Docker is not reachable (see docker.reachable)"


def test_docker_version_fails_below_api_1_41_and_passes_from_it(home: Layout) -> None:
    old = make_context(
        home, daemon_version=lambda: ("h", {"Version": "19.03", "ApiVersion": "1.40"})
    )
    status, finding, _, fix = check(old, "docker.version")
    assert status is Status.FAIL
    assert "API 1.40" in finding and "1.41" in finding
    assert "upgrade" in fix
    assert check(make_context(home), "docker.version")[0] is Status.OK


def test_compose_v2_from_docker_compose_version(home: Layout) -> None:
    def compose(answer: Completed | BaseException) -> tuple[Status, str]:
        ctx = make_context(home, run=FakeRunner({("docker", "compose"): answer}))
        status, finding, _, _ = check(ctx, "compose.v2")
        return status, finding

    assert compose(Completed(0, "2.40.3\n", "")) == (Status.OK, "Docker Compose 2.40.3")
    assert compose(Completed(0, "v2.20.0\n", ""))[0] is Status.OK
    status, finding = compose(Completed(0, "1.29.2\n", ""))
    assert status is Status.FAIL and "not Compose v2" in finding
    unknown = "docker: 'compose' is not a docker command.\nSee 'docker --help'"
    status, finding = compose(Completed(1, "", unknown))
    assert status is Status.FAIL and "Compose v2 is not installed" in finding
    status, finding = compose(FileNotFoundError("docker"))
    assert status is Status.FAIL and "no `docker` on PATH" in finding
    status, finding = compose(subprocess.TimeoutExpired(["docker"], 15))
    assert status is Status.FAIL and "did not answer" in finding


# -- configuration ------------------------------------------------------------------------------


def test_a_valid_private_config_passes_both_config_checks(home: Layout) -> None:
    ctx = make_context(home)
    assert check(ctx, "config.valid")[:2] == (Status.OK, f"{home.config} is valid")
    assert check(ctx, "config.permissions")[0] is Status.OK


def test_an_invalid_config_fails_config_valid_naming_file_and_line(home: Layout) -> None:
    home.config.write_text(CONFIG + "agent:\n  watch:\n    polling_intervall: 5m\n")
    status, finding, _, fix = check(make_context(home), "config.valid")
    assert status is Status.FAIL
    assert f"{home.config}:8" in finding and "polling_intervall" in finding
    assert f"docker dso config validate {home.config}" in fix


def test_a_group_writable_config_fails_permissions_but_its_content_is_valid(home: Layout) -> None:
    home.config.chmod(0o660)
    ctx = make_context(home)
    status, finding, _, fix = check(ctx, "config.permissions")
    assert status is Status.FAIL
    assert "group-writable" in finding
    assert f"chmod 600 {home.config}" in fix
    assert check(ctx, "config.valid")[0] is Status.OK
    # Checks that need the configuration say which check has the cause.
    assert check(ctx, "providers.binaries")[1].endswith("(see config.permissions)")


def test_a_world_readable_local_config_is_a_warning(home: Layout) -> None:
    home.config.chmod(0o644)
    status, finding, _, fix = check(make_context(home), "config.permissions")
    assert status is Status.WARN
    assert "readable by others" in finding and "mode 0644" in finding
    assert fix == f"chmod 600 {home.config}"


def test_no_config_file_is_fine_in_local_mode(home: Layout) -> None:
    home.config.unlink()
    status, finding, _, _ = check(make_context(home), "config.valid")
    assert status is Status.OK
    assert "built-in defaults" in finding


# -- directories ------------------------------------------------------------------------------


def test_a_fresh_home_has_safe_directories(home: Layout) -> None:
    status, finding, detail, _ = check(make_context(home), "dirs.modes")
    assert (status, finding) == (
        Status.OK,
        "6 directories and the vault key: safe owners and modes",
    ), detail
    assert f"checked {home.state} (mode 0700" in detail


def test_a_world_writable_plugins_directory_fails_naming_it(home: Layout) -> None:
    home.plugins.chmod(0o777)
    status, finding, _, fix = check(make_context(home), "dirs.modes")
    assert status is Status.FAIL
    assert finding.startswith(f"{home.plugins} is world-writable (mode 0777")
    assert f"chmod 700 {home.plugins}" in fix


def test_a_directory_of_another_user_fails(home: Layout) -> None:
    os.chown(home.locks, 4321, 4321)
    status, finding, _, fix = check(make_context(home), "dirs.modes")
    assert status is Status.FAIL
    assert str(home.locks) in finding and "belongs to 4321" in finding
    assert f"chown {os.geteuid()} {home.locks}" in fix


def test_a_readable_state_directory_is_a_warning(home: Layout) -> None:
    home.state.chmod(0o755)
    status, finding, _, fix = check(make_context(home), "dirs.modes")
    assert status is Status.WARN
    assert finding == f"{home.state} is open to others (mode 0755, root:root)"
    assert fix == f"chmod 700 {home.state}"


def test_a_readable_vault_key_fails(home: Layout) -> None:
    home.vault_key.chmod(0o640)
    status, finding, _, fix = check(make_context(home), "dirs.modes")
    assert status is Status.FAIL
    assert str(home.vault_key) in finding and "the vault refuses" in finding
    assert f"chmod 600 {home.vault_key}" in fix


def test_no_home_at_all_is_a_warning_with_init_as_the_fix(home: Layout) -> None:
    ctx = make_context(local_layout(home.root.parent / "nope"))
    status, finding, _, fix = check(ctx, "dirs.modes")
    assert status is Status.WARN
    assert finding.startswith(f"no dso installation at {home.root.parent / 'nope'} yet")
    assert "docker dso init" in fix


# -- systemd ------------------------------------------------------------------------------------


def _systemd(home: Layout, props: str, *, mode: str = "agent") -> tuple[Status, str, str]:
    systemd = home.root / "systemd"
    systemd.mkdir(exist_ok=True)
    layout = agent_layout() if mode == "agent" else home
    runner = FakeRunner({("systemctl", "show"): Completed(0, props, "")})
    ctx = make_context(layout, systemd_dir=systemd, run=runner)
    status, finding, _, fix = check(ctx, "systemd.unit")
    assert runner.calls and runner.calls[0][:3] == ("systemctl", "show", "dso-agent.service")
    return status, finding, fix


def test_without_systemd_the_unit_check_warns_and_says_what_to_do_instead(home: Layout) -> None:
    status, finding, detail, fix = check(make_context(home), "systemd.unit")
    assert status is Status.WARN
    assert finding == "no systemd on this host: the agent is not a systemd service"
    assert "systemd is not PID 1" in detail
    assert "docker dso up -d" in fix
    status, _, _, fix = check(make_context(agent_layout()), "systemd.unit")
    assert status is Status.WARN and "dso agent --mode agent" in fix


def test_a_missing_unit_fails_in_agent_mode_and_warns_in_local_mode(home: Layout) -> None:
    props = "LoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n"
    status, finding, fix = _systemd(home, props)
    assert status is Status.FAIL
    assert finding == "dso-agent.service is not installed"
    assert "bootstrap agent" in fix
    assert _systemd(home, props, mode="local")[0] is Status.WARN


def test_unit_states(home: Layout) -> None:
    base = "LoadState=loaded\nFragmentPath=/etc/systemd/system/dso-agent.service\n"
    running = base + "ActiveState=active\nSubState=running\nUnitFileState=enabled\n"
    assert _systemd(home, running)[:2] == (
        Status.OK,
        "dso-agent.service: active (running), enabled",
    )
    failed = base + "ActiveState=failed\nSubState=failed\nResult=exit-code\nUnitFileState=enabled"
    status, finding, fix = _systemd(home, failed)
    assert (status, finding) == (Status.FAIL, "dso-agent.service failed (exit-code)")
    assert "system logs -p err" in fix
    stopped = base + "ActiveState=inactive\nSubState=dead\nUnitFileState=enabled\n"
    assert _systemd(home, stopped)[0] is Status.FAIL
    assert _systemd(home, stopped, mode="local")[0] is Status.OK
    disabled = base + "ActiveState=active\nSubState=running\nUnitFileState=disabled\n"
    status, finding, fix = _systemd(home, disabled)
    assert status is Status.WARN and "not enabled" in finding
    assert fix == "sudo docker dso system enable"


# -- tmpfs ------------------------------------------------------------------------------------


def test_secrets_on_a_disk_fail_and_on_a_tmpfs_pass(home: Layout, tmp_path: Path) -> None:
    on_disk = make_context(home, environ={"DSO_SECRETS_DIR": str(tmp_path / "secrets")})
    status, finding, _, fix = check(on_disk, "storage.tmpfs")
    assert status is Status.FAIL
    assert "not a tmpfs" in finding
    assert "DSO_SECRETS_DIR" in fix
    status, finding, _, _ = check(make_context(home), "storage.tmpfs")
    assert status is Status.OK
    assert "tmpfs" in finding

"""A bootstrap is one transaction: a failing step (or verification, or Ctrl-C) undoes every step
already done, restoring files, modes and owners that were there and removing what it created."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.bootstrap import AgentRequest, StepStatus, apply_plan, plan_agent
from kernel.bootstrap import transaction as transaction_module
from kernel.bootstrap.verify import Verified
from tests.unit.bootstrap.support import FakeHost, mode_owner, snapshot


def test_a_path_that_cannot_be_written_midway_undoes_everything(tmp_path: Path) -> None:
    host = FakeHost()
    (tmp_path / "etc").mkdir()
    plan = plan_agent(AgentRequest(), host, root=tmp_path)
    # Between the plan and the apply, a file takes the place of a directory the plan creates
    # after the configuration, the key and the vault: the mkdir fails, whoever runs it.
    (tmp_path / "etc/systemd").write_text("in the way\n")
    before = snapshot(tmp_path)
    failing = [step.path for step in plan.steps].index(tmp_path / "etc/systemd")

    outcome = apply_plan(plan, host)

    assert not outcome.ok
    assert outcome.failed_step == failing
    assert outcome.error is not None
    assert outcome.error.startswith(f"step {failing + 1} of {len(plan.steps)} (create directory")
    assert "File exists" in outcome.error
    assert outcome.statuses[:failing] == [StepStatus.UNDONE] * failing
    assert outcome.statuses[failing] == StepStatus.FAILED
    assert set(outcome.statuses[failing + 1 :]) == {StepStatus.SKIPPED}
    assert outcome.undo_errors == []
    assert snapshot(tmp_path) == before  # the key, the vault, dso.yaml, every directory: gone
    assert host.calls == [("add_group", "dso"), ("remove_group", "dso")]
    assert outcome.to_dict()["failed_step"] == failing + 1


def test_files_modes_and_the_unit_that_were_there_are_restored(tmp_path: Path) -> None:
    host = FakeHost(dso_exists=True, fail={"daemon_reload"})
    config = tmp_path / "etc/dso/dso.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("version: 1\n")
    config.chmod(0o664)  # group-writable: the plan fixes it
    unit = tmp_path / "etc/systemd/system/dso-agent.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/old/dso\n")
    unit.chmod(0o600)
    before = snapshot(tmp_path)
    plan = plan_agent(AgentRequest(), host, root=tmp_path)
    kinds = [step.kind for step in plan.steps]
    assert "attributes" in kinds and kinds[-2:] == ["write", "reload"]

    outcome = apply_plan(plan, host)

    assert not outcome.ok
    assert "systemctl daemon-reload" in (outcome.error or "")
    assert "daemon_reload failed (injected)" in (outcome.error or "")
    assert snapshot(tmp_path) == before
    assert mode_owner(config)[0] == 0o664
    assert unit.read_text() == "[Service]\nExecStart=/old/dso\n"


def test_a_failed_verification_undoes_everything_and_reloads_systemd_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = FakeHost()
    monkeypatch.setattr(
        transaction_module,
        "verify",
        lambda plan, host: [Verified("dirs.modes", "fail", "something is wrong", "fix it")],
    )
    outcome = apply_plan(plan_agent(AgentRequest(), host, root=tmp_path), host)
    assert outcome.error == "verification failed: dirs.modes: something is wrong"
    assert outcome.hint == "fix it"
    assert set(outcome.statuses) == {StepStatus.UNDONE}
    assert list(tmp_path.iterdir()) == []
    # The unit was loaded by the first reload; systemd reads its absence after the undo.
    assert host.calls == [
        ("add_group", "dso"),
        ("daemon_reload",),
        ("remove_group", "dso"),
        ("daemon_reload",),
    ]


def test_ctrl_c_midway_undoes_what_was_done_then_goes_on(tmp_path: Path) -> None:
    class Interrupting(FakeHost):
        def daemon_reload(self) -> None:
            self.calls.append(("daemon_reload",))
            raise KeyboardInterrupt

    host = Interrupting()
    plan = plan_agent(AgentRequest(), host, root=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        apply_plan(plan, host)
    assert list(tmp_path.iterdir()) == []
    assert ("remove_group", "dso") in host.calls


def test_an_undo_that_fails_is_reported(tmp_path: Path) -> None:
    host = FakeHost(fail={"daemon_reload", "remove_group"})
    outcome = apply_plan(plan_agent(AgentRequest(), host, root=tmp_path), host)
    assert not outcome.ok
    assert outcome.statuses[0] == StepStatus.UNDO_FAILED
    assert outcome.undo_errors == [
        "undo of step 1 (add group dso (groupadd --system dso)): remove_group failed (injected)"
    ]
    assert list(tmp_path.iterdir()) == []  # the files were undone all the same

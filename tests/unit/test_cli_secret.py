"""`docker dso secret …` as a user sees it: exit codes, stderr messages, stdout data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import kernel.atomic_write
from kernel.cli.app import Application
from kernel.paths import local_layout
from kernel.secret_value import SecretValue
from kernel.vault import MAX_VALUE_SIZE, Vault, open_local
from tests.conftest import CliResult, RunDso


@pytest.fixture
def dso(run_dso: RunDso) -> RunDso:
    """``run_dso`` with an initialized local vault (key-file mode)."""
    assert run_dso("init").exit_code == 0
    return run_dso


@pytest.fixture
def tty_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Application, "stdin_is_tty", property(lambda self: True))


@pytest.fixture
def tty_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Application, "stdout_is_tty", property(lambda self: True))


def vault() -> Vault:
    return open_local(local_layout())


def stored(name: str) -> bytes:
    return vault().get(name).value.reveal()


# -- set -------------------------------------------------------------------------------------


def test_set_reads_stdin_and_strips_exactly_one_newline(dso: RunDso) -> None:
    result = dso("secret", "set", "app/db_password", input="s3cret\n\n")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "set app/db_password (version 1)\n"
    assert stored("app/db_password") == b"s3cret\n"
    dso("secret", "set", "app/db_password", input="no newline")
    assert stored("app/db_password") == b"no newline"


def test_set_again_bumps_the_version_unless_the_value_is_the_same(dso: RunDso) -> None:
    dso("secret", "set", "app/x", input="one\n")
    assert dso("secret", "set", "app/x", input="two\n").stderr == "set app/x (version 2)\n"
    assert dso("secret", "set", "app/x", input="two\n").stderr == "app/x unchanged (version 2)\n"


def test_set_from_file_keeps_the_bytes_exactly(dso: RunDso, tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(b"-----BEGIN KEY-----\n\x00\xff\n-----END KEY-----\n")
    result = dso("secret", "set", "app/tls_key", "--from-file", str(pem))
    assert result.exit_code == 0, result.output
    assert stored("app/tls_key") == pem.read_bytes()


def test_set_prompts_twice_with_hidden_input_on_a_terminal(dso: RunDso, tty_stdin: None) -> None:
    result = dso("secret", "set", "app/pw", input="first\nother\nhunter2\nhunter2\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "Value for app/pw" in result.stderr
    assert "Repeat for confirmation" in result.stderr
    assert "do not match" in result.stderr
    assert "hunter2" not in result.output and "first" not in result.output
    assert stored("app/pw") == b"hunter2"


@pytest.mark.parametrize(
    "argv", [["app/pw", "hunter2"], ["app/pw", "--value", "hunter2"], ["app/pw", "--value=hunter2"]]
)
def test_a_value_on_the_command_line_is_refused_without_echoing_it(
    dso: RunDso, argv: list[str]
) -> None:
    result = dso("secret", "set", *argv, input="from stdin\n")
    assert result.exit_code == 2
    assert "`secret set` takes only NAME" in result.stderr
    assert "rotate it" in result.stderr
    assert "hunter2" not in result.output
    assert vault().list() == []


def test_set_without_a_vault_creates_nothing(run_dso: RunDso, dso_home: Path) -> None:
    result = run_dso("secret", "set", "app/x", input="v\n")
    assert result.exit_code == 4
    assert f"dso: error: no vault at {dso_home / 'vault.enc'}" in result.stderr
    assert "hint: create one with `docker dso init`" in result.stderr
    assert not dso_home.exists()


def test_set_refuses_an_empty_value(dso: RunDso) -> None:
    for data in ("", "\n"):
        result = dso("secret", "set", "app/x", input=data)
        assert result.exit_code == 5
        assert "the value of 'app/x' is empty: nothing was read from stdin" in result.stderr


def test_set_refuses_an_oversized_value_stating_size_and_limit(dso: RunDso, tmp_path: Path) -> None:
    result = dso("secret", "set", "app/big", input=b"a" * (MAX_VALUE_SIZE + 1) + b"\n")
    assert result.exit_code == 5
    assert "is 1048577 bytes; the limit is 1048576 bytes (1 MiB)" in result.stderr
    big = tmp_path / "big"
    big.write_bytes(b"a" * (MAX_VALUE_SIZE + 5))
    result = dso("secret", "set", "app/big", "--from-file", str(big))
    assert result.exit_code == 5
    assert "is 1048581 bytes; the limit is 1048576 bytes" in result.stderr
    ok = dso("secret", "set", "app/big", input=b"a" * MAX_VALUE_SIZE + b"\n")
    assert ok.exit_code == 0, ok.output


def test_set_refuses_a_bad_name_before_reading_the_value(dso: RunDso) -> None:
    result = dso("secret", "set", "app/../etc", input="v\n")
    assert result.exit_code == 5
    assert "secret name 'app/../etc' has a '..' segment" in result.stderr


def test_set_with_a_missing_file(dso: RunDso, tmp_path: Path) -> None:
    result = dso("secret", "set", "a", "--from-file", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "cannot read" in result.stderr and "No such file" in result.stderr


# -- get -------------------------------------------------------------------------------------


def test_get_to_a_pipe_prints_the_exact_bytes(dso: RunDso) -> None:
    dso("secret", "set", "app/x", input="line1\nline2\n\n")
    result = dso("secret", "get", "app/x")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "line1\nline2\n", "")


def test_get_refuses_a_terminal_without_reveal(dso: RunDso, tty_stdout: None) -> None:
    dso("secret", "set", "app/x", input="hunter2")
    result = dso("secret", "get", "app/x")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "refusing to print the value of 'app/x' to a terminal" in result.stderr
    assert "--reveal" in result.stderr
    revealed = dso("secret", "get", "app/x", "--reveal")
    assert (revealed.exit_code, revealed.stdout) == (0, "hunter2\n")


def test_get_json_prints_metadata_only(dso: RunDso) -> None:
    dso("secret", "set", "app/x", input="hunter2")
    dso("secret", "set", "app/x", input="hunter3")
    result = dso("secret", "get", "app/x", "--json")
    doc = json.loads(result.stdout)
    assert set(doc) == {"name", "version", "created", "updated", "size"}
    assert (doc["name"], doc["version"], doc["size"]) == ("app/x", 2, 7)
    assert doc["updated"].endswith("Z")
    assert "hunter" not in result.output
    assert dso("secret", "get", "app/x", "--json", "--reveal").exit_code == 2


def test_get_a_missing_secret(dso: RunDso) -> None:
    result = dso("secret", "get", "app/nope")
    assert result.exit_code == 5
    assert "no secret named 'app/nope' in the local vault" in result.stderr
    assert "docker dso secret list" in result.stderr


# -- list ------------------------------------------------------------------------------------


def test_list_of_an_empty_vault(dso: RunDso) -> None:
    result = dso("secret", "list")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "the local vault is empty" in result.stderr
    assert json.loads(dso("secret", "list", "--json").stdout) == []


def test_list_shows_names_versions_and_update_times(dso: RunDso) -> None:
    dso("secret", "set", "b/long_secret_name", input="1")
    dso("secret", "set", "a", input="1")
    dso("secret", "set", "a", input="2")
    lines = dso("secret", "list").stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "UPDATED"]
    assert [line.split()[:2] for line in lines[1:]] == [["a", "2"], ["b/long_secret_name", "1"]]
    docs = json.loads(dso("secret", "list", "--json").stdout)
    assert [(d["name"], d["version"]) for d in docs] == [("a", 2), ("b/long_secret_name", 1)]


# -- delete ----------------------------------------------------------------------------------


def test_delete_without_a_terminal_needs_no_confirmation(dso: RunDso) -> None:
    dso("secret", "set", "app/x", input="v")
    result = dso("secret", "delete", "app/x")
    assert (result.exit_code, result.stderr) == (0, "deleted app/x (was version 1)\n")
    assert vault().list() == []
    assert dso("secret", "set", "app/x", input="v").stderr == "set app/x (version 2)\n"


def test_delete_asks_on_a_terminal(dso: RunDso, tty_stdin: None) -> None:
    vault().set("app/x", SecretValue("v"))  # stdin is a "terminal": set would prompt
    declined = dso("secret", "delete", "app/x", input="n\n")
    assert declined.exit_code == 1
    assert "Delete app/x (version 1)?" in declined.stderr
    assert "app/x was not deleted" in declined.stderr
    assert vault().versions(["app/x"]) == {"app/x": 1}
    accepted = dso("secret", "delete", "app/x", input="y\n")
    assert accepted.exit_code == 0
    assert vault().versions(["app/x"]) == {"app/x": None}


def test_delete_yes_skips_the_question(dso: RunDso, tty_stdin: None) -> None:
    vault().set("app/x", SecretValue("v"))
    result = dso("secret", "delete", "app/x", "--yes")
    assert result.exit_code == 0
    assert "?" not in result.stderr


def test_delete_a_missing_secret(dso: RunDso) -> None:
    result = dso("secret", "delete", "app/x", "--yes")
    assert result.exit_code == 5
    assert "no secret named 'app/x'" in result.stderr


# -- errors of the vault itself --------------------------------------------------------------


def test_a_tampered_vault_is_refused_and_left_unchanged(dso: RunDso, dso_home: Path) -> None:
    dso("secret", "set", "a", input="v")
    path = dso_home / "vault.enc"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    for args in (("secret", "list"), ("secret", "set", "b")):
        result = dso(*args, input="x")
        assert result.exit_code == 4
        assert "wrong key or passphrase, or the file was modified" in result.stderr
    assert path.read_bytes() == bytes(data)


def test_a_key_file_readable_by_others_is_refused(dso: RunDso, dso_home: Path) -> None:
    (dso_home / "vault.key").chmod(0o644)
    result = dso("secret", "list")
    assert result.exit_code == 4
    assert "accessible by group or others (mode 0644)" in result.stderr
    assert f"hint: chmod 600 {dso_home / 'vault.key'}" in result.stderr


def test_a_full_disk_exits_8_and_keeps_the_vault(
    dso: RunDso, monkeypatch: pytest.MonkeyPatch
) -> None:
    dso("secret", "set", "a", input="old")

    class NoSpace:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        @staticmethod
        def write(fd: int, data: Any) -> int:
            raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(kernel.atomic_write, "os", NoSpace())
        result = dso("secret", "set", "a", input="new")
    assert result.exit_code == 8
    assert "no space left on device; the previous file is unchanged" in result.stderr
    assert stored("a") == b"old"


def test_passphrase_mode_end_to_end(run_dso: RunDso, dso_home: Path) -> None:
    env = {"DSO_VAULT_PASSPHRASE": "correct horse battery"}
    assert run_dso("init", env=env).exit_code == 0
    assert run_dso("secret", "set", "a", input="v", env=env).exit_code == 0
    assert run_dso("secret", "get", "a", env=env).stdout == "v"
    missing = run_dso("secret", "get", "a")
    assert missing.exit_code == 4
    assert "is protected by a passphrase (argon2id (t=3, p=4, m=64 MiB))" in missing.stderr
    assert "DSO_VAULT_PASSPHRASE is not set" in missing.stderr
    wrong = run_dso("secret", "get", "a", env={"DSO_VAULT_PASSPHRASE": "wrong"})
    assert wrong.exit_code == 4
    assert "wrong key or passphrase" in wrong.stderr
    assert "correct horse" not in missing.output + wrong.output


# -- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["set", "get", "list", "delete", "import", None])
def test_every_command_documents_examples(run_dso: RunDso, command: str | None) -> None:
    args = ["secret", command] if command else ["secret"]
    result = run_dso(*args, "--help")
    assert result.exit_code == 0
    assert "Examples:\n    docker dso secret" in result.stdout


# -- import ----------------------------------------------------------------------------------

ENV_FILE = """\
# database
export DB_USER=app
DB_PASSWORD="p@ss \\"word\\" $NOT_EXPANDED"
API_KEY='literal \\n'   # comment
TLS_CERT="-----BEGIN-----
abc
-----END-----"
EMPTY=
"""


def test_import_creates_secrets_and_prints_a_summary(dso: RunDso, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(ENV_FILE)
    result = dso("secret", "import", str(env), "--prefix", "app/")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"warning: {env}:8: EMPTY skipped: empty value",
        "created app/DB_USER (version 1)",
        "created app/DB_PASSWORD (version 1)",
        "created app/API_KEY (version 1)",
        "created app/TLS_CERT (version 1)",
        f"imported 4 secret(s) from {env}: 4 created, 0 updated, 0 unchanged",
    ]
    assert stored("app/DB_USER") == b"app"
    assert stored("app/DB_PASSWORD") == b'p@ss "word" $NOT_EXPANDED'
    assert stored("app/API_KEY") == b"literal \\n"
    assert stored("app/TLS_CERT") == b"-----BEGIN-----\nabc\n-----END-----"
    assert "p@ss" not in result.output


def test_import_again_reports_updated_and_unchanged(dso: RunDso, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\nB=2\n")
    dso("secret", "import", str(env), "--lowercase")
    env.write_text("A=1\nB=3\n")
    result = dso("secret", "import", str(env), "--lowercase")
    assert "a unchanged (version 1)" in result.stderr
    assert "set b" not in result.stderr
    assert "updated b (version 2)" in result.stderr
    assert "1 updated, 1 unchanged" in result.stderr


def test_import_dry_run_writes_nothing(dso: RunDso, tmp_path: Path, dso_home: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    before = (dso_home / "vault.enc").read_bytes()
    result = dso("secret", "import", str(env), "--dry-run")
    assert result.exit_code == 0
    assert "would create A (version 1)" in result.stderr
    assert "dry run: 1 to create, 0 to update, 0 unchanged; nothing was written" in result.stderr
    assert (dso_home / "vault.enc").read_bytes() == before


def test_import_json_summary_has_no_values(dso: RunDso, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=hunter2\nB=\n")
    result = dso("secret", "import", str(env), "--prefix", "x/", "--json")
    doc = json.loads(result.stdout)
    assert doc == {
        "file": str(env),
        "dry_run": False,
        "secrets": [{"name": "x/A", "variable": "A", "line": 1, "action": "created", "version": 1}],
        "skipped": [{"variable": "B", "line": 2, "reason": "empty value"}],
    }
    assert "hunter2" not in result.output


def test_import_from_stdin(dso: RunDso) -> None:
    result = dso("secret", "import", "-", input="A=1\n")
    assert result.exit_code == 0
    assert stored("A") == b"1"


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (b"A=1\nhunter2\nB=2\n", 2, "{env}:2: expected NAME=VALUE (this line has no '=')"),
        (b'A=1\nB="hunter2\n', 2, "{env}:2: the double quote opened here is never closed"),
        (b"A=1\nB=\xff\xfe\n", 2, "{env}:2: not valid UTF-8"),
        (b"A=1\nB=" + b"h" * (MAX_VALUE_SIZE + 1), 5, "{env}:2: the value of 'p/B' is 1048577"),
        (b"A=1\nB..=2\n", 2, "{env}:2: the variable name before '=' is not valid"),
    ],
)
def test_an_invalid_file_imports_nothing(
    dso: RunDso, tmp_path: Path, dso_home: Path, content: bytes, code: int, message: str
) -> None:
    env = tmp_path / "prod.env"
    env.write_bytes(content)
    before = (dso_home / "vault.enc").read_bytes()
    result = dso("secret", "import", str(env), "--prefix", "p/")
    assert result.exit_code == code
    assert message.format(env=env) in result.stderr
    assert "hunter2" not in result.output and "hhhh" not in result.output
    assert (dso_home / "vault.enc").read_bytes() == before


def test_import_of_a_missing_file_or_without_a_vault(run_dso: RunDso, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    assert run_dso("secret", "import", str(env)).exit_code == 4
    run_dso("init")
    result = run_dso("secret", "import", str(tmp_path / "nope.env"))
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


# -- the canary ------------------------------------------------------------------------------


def test_a_secret_value_shows_up_only_in_get_to_a_pipe(
    dso: RunDso, canary: str, tmp_path: Path, dso_home: Path
) -> None:
    """Set a known value every way there is, then grep every output, log and file for it."""

    def run(*args: str, input: str | bytes | None = None) -> CliResult:
        return dso("--log-level", "debug", *args, input=input, env={"DSO_DEBUG": "1"})

    value_file = tmp_path / "value"
    value_file.write_text(canary)
    env_file = tmp_path / ".env"
    env_file.write_text(f'CANARY={canary}\nQUOTED="{canary}"\n')
    bad_env = tmp_path / "bad.env"
    bad_env.write_text(f"OK=1\n{canary}\n")
    results = [
        run("secret", "set", "app/canary", input=canary + "\n"),
        run("secret", "set", "app/canary", input=canary + "\n"),  # unchanged
        run("secret", "set", "app/file", "--from-file", str(value_file)),
        run("secret", "set", "app/argv", canary),  # refused
        run("secret", "set", "app/argv", f"--value={canary}"),  # refused
        run("secret", "set", "app/big", input=canary * (MAX_VALUE_SIZE // len(canary) + 1)),
        run("secret", "import", str(env_file), "--prefix", "imp/"),
        run("secret", "import", str(env_file), "--prefix", "dry/", "--dry-run", "--json"),
        run("secret", "import", str(bad_env)),  # refused
        run("secret", "list"),
        run("secret", "list", "--json"),
        run("secret", "get", "app/canary", "--json"),
        run("secret", "get", "app/nope"),
        run("secret", "delete", "app/file"),
    ]
    assert "[DEBUG] dso.vault: opened vault" in results[0].stderr, "debug logs were captured"
    assert [r.exit_code for r in results] == [0, 0, 0, 2, 2, 5, 0, 0, 2, 0, 0, 0, 5, 0]
    for index, result in enumerate(results):
        assert canary not in result.output, f"result {index} leaked the value"
    assert "Traceback" in results[3].stderr, "DSO_DEBUG tracebacks are covered too"

    for name in ("app/canary", "imp/CANARY", "imp/QUOTED"):
        piped = run("secret", "get", name)
        assert (piped.exit_code, piped.stdout) == (0, canary)
        assert canary not in piped.stderr

    for path in dso_home.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), f"{path} holds the value in clear"

"""What `docker dso up` and `validate` accept and refuse, read through the real compose.

Multiple -f files, profiles, list-form environment, `user:`, services left exactly as compose
would run them, and bad input reported with compose's own words or file:line, never a traceback.
"""

from __future__ import annotations

import json
import os
import secrets
import time

import pytest

from tests.integration.compose_support import IMAGE, ComposeProject, docker, project

pytestmark = pytest.mark.integration
__all__ = ["project"]

BASE = f"""
services:
  api:
    image: {IMAGE}
    command: ["sleep", "600"]
    stop_grace_period: 1s
    environment:
      - TOKEN=dsofile://app/token
      - MODE=base
    user: "1000:1000"
  plain:
    image: {IMAGE}
    command: ["sh", "-c", "echo $$HOME costs 5$$; sleep 600"]
    stop_grace_period: 1s
    environment:
      GREETING: ${{GREETING:-hello}}
    labels:
      note: "a$$b"
  tools:
    image: {IMAGE}
    command: ["sleep", "600"]
    stop_grace_period: 1s
    profiles: [tools]
    environment:
      - ADMIN=dso://app/admin
"""

OVERRIDE = """
services:
  api:
    environment:
      - MODE=override
      - EXTRA=dsofile://app/extra
"""


def test_files_profiles_list_form_and_user(project: ComposeProject) -> None:
    canary = "CANARY-" + secrets.token_hex(12)
    for name in ("token", "extra", "admin"):
        project.set_secret(f"app/{name}", f"{canary}-{name}")
    project.write("base.yaml", BASE)
    project.write("override.yaml", OVERRIDE)
    project.dso("up", "-d", "-f", "base.yaml", "-f", "override.yaml", "--profile", "tools")

    # The override's variables and the base's both arrive; the profile's service runs.
    assert project.exec("api", "sh", "-c", 'printf %s "$MODE"') == "override"
    assert project.exec("api", "cat", "/run/secrets/dso/TOKEN") == f"{canary}-token"
    assert project.exec("api", "cat", "/run/secrets/dso/EXTRA") == f"{canary}-extra"
    assert project.exec("tools", "sh", "-c", 'printf %s "$ADMIN"') == f"{canary}-admin"

    # user: "1000:1000" owns the files, 0400, and reads them as that user (exec runs as it).
    assert project.exec("api", "id", "-u").strip() == "1000"
    owner = project.exec("api", "stat", "-L", "-c", "%a %u:%g", "/run/secrets/dso/TOKEN")
    assert owner.strip() == "400 1000:1000"
    host = project.secrets_base / project.name / "api"
    assert (host.stat().st_uid, host.stat().st_gid) == (1000, 1000)

    # The service without references is exactly what plain compose would run: same config hash.
    plain_hash = docker(
        "compose", "-p", project.name, "--project-directory", str(project.dir),
        "-f", str(project.dir / "base.yaml"), "-f", str(project.dir / "override.yaml"),
        "--profile", "tools", "config", "--hash", "plain",
    )  # fmt: skip
    assert plain_hash.returncode == 0, plain_hash.stderr
    expected = plain_hash.stdout.split()[1]
    labels = project.inspect("plain")["Config"]["Labels"]
    assert labels["com.docker.compose.config-hash"] == expected
    assert labels["note"] == "a$b"
    assert labels["com.docker.compose.project.working_dir"] == str(project.dir)
    assert "dso.refs" not in labels
    assert "costs 5$" in docker("logs", project.container("plain")).stdout

    # ps / logs / stop through the passthrough see the same project.
    ps = project.dso("compose", "-f", "base.yaml", "-f", "override.yaml", "ps", "--format", "json")
    services = {json.loads(line)["Service"] for line in ps.stdout.splitlines() if line}
    assert services == {"api", "plain", "tools"}
    project.dso("compose", "-f", "base.yaml", "stop", "plain")
    state = project.inspect("plain")["State"]
    assert state["Running"] is False
    # restart keeps the container dso created (with its secrets): it is not recreated.
    api = project.container("api")
    project.dso("compose", "-f", "base.yaml", "-f", "override.yaml", "restart", "api")
    assert project.container("api") == api
    assert project.exec("api", "cat", "/run/secrets/dso/TOKEN") == f"{canary}-token"
    project.assert_no_output_contains(canary)


def test_validate_for_ci(project: ComposeProject) -> None:
    project.set_secret("app/token", "CANARY-validate")
    project.write("compose.yaml", BASE)
    doc = json.loads(project.dso("validate", "--json").stdout)
    assert doc["valid"] is True
    # Services of inactive profiles are not part of the project: only TOKEN.
    assert [(r["service"], r["variable"], r["ok"]) for r in doc["references"]] == [
        ("api", "TOKEN", True)
    ]
    failed = project.dso("validate", "--profile", "tools", "--json", ok=False)
    assert failed.returncode == 1
    (problem,) = json.loads(failed.stdout)["problems"]
    assert (problem["file"], problem["line"]) == ("compose.yaml", 25)
    assert (problem["service"], problem["variable"]) == ("tools", "ADMIN")
    assert "no secret named 'app/admin'" in problem["problem"]
    project.set_secret("app/admin", "CANARY-validate-admin")
    ok = project.dso("validate", "--profile", "tools")
    assert ok.stderr.endswith("2 secret references in 2 services: all valid\n")
    project.assert_no_output_contains("CANARY-validate")


def test_bad_input_is_reported_precisely_without_a_traceback(project: ComposeProject) -> None:
    project.set_secret("app/token", "CANARY-bad")
    project.write(
        "compose.yaml",
        f"""
        services:
          web:
            image: {IMAGE}
            environment:
              - MISSING=dso://app/missing
              - MALFORMED=dso://app/db@
              - TOKEN=dsofile://app/token
        """,
    )
    up = project.dso("up", "-d", ok=False)
    assert up.returncode == 5
    assert (
        "compose.yaml:6: service web, MISSING: dso://app/missing: provider 'local': no secret named"
        in up.stderr
    )
    assert "compose.yaml:7: service web, MALFORMED: invalid secret reference" in up.stderr
    assert "Traceback" not in up.stderr
    assert (
        docker("ps", "-aq", f"--filter=label=com.docker.compose.project={project.name}").stdout
        == ""
    )

    validate = project.dso("validate", ok=False)
    assert validate.returncode == 1
    assert validate.stdout.count("service web") == 2

    project.write("compose.yaml", "services:\n  web:\n    image: x\n    bogus: 1\n")
    broken = project.dso("up", "-d", ok=False)
    assert broken.returncode == 3
    assert "additional properties 'bogus' not allowed" in broken.stderr
    assert "Traceback" not in broken.stderr
    missing = project.dso("up", "-d", "-f", "nope.yaml", ok=False)
    assert missing.returncode == 3 and "nope.yaml" in missing.stderr

    project.write("compose.yaml", f"services:\n  web:\n    image: {IMAGE}\n    user: app\n"
                  "    environment:\n      T: dsofile://app/token\n")  # fmt: skip
    named = project.dso("up", "-d", ok=False)
    assert named.returncode == 3
    assert "user: 'app'" in named.stderr and 'user: "1000:1000"' in named.stderr
    project.assert_no_output_contains("CANARY-bad")


def test_stale_secret_directories_are_removed_on_the_next_run(project: ComposeProject) -> None:
    project.set_secret("app/token", "CANARY-stale")
    base = project.secrets_base
    old, young = f"dsotestghost{secrets.token_hex(3)}", f"dsotestyoung{secrets.token_hex(3)}"
    for name in (old, young):
        (base / name / "web").mkdir(parents=True)
    long_ago = time.time() - 3600
    for path in (base / old / "web", base / old):
        os.utime(path, (long_ago, long_ago))
    project.write(
        "compose.yaml",
        f"""
        services:
          api:
            image: {IMAGE}
            command: ["sleep", "600"]
            environment:
              TOKEN: dsofile://app/token
        """,
    )
    project.dso("up", "-d")
    # No container has ever belonged to either ghost: the old one goes, the young one (maybe a
    # project still being built) stays until it has been idle for the grace period.
    assert not (base / old).exists()
    assert (base / young).is_dir()
    assert (base / project.name / "api").is_dir()

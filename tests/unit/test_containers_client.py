"""kernel.containers.client: every Docker SDK / HTTP exception maps to one dso error (table)."""

from __future__ import annotations

import docker.errors
import pytest
import requests
import requests.exceptions

from kernel.containers.client import docker_errors, translate
from kernel.errors import (
    DockerConflictError,
    DockerError,
    DockerNotFoundError,
    DockerUnavailableError,
)


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.url = "http+docker://localhost/v1.41/containers/x/json"
    response.reason = "reason"
    return response


def _api(status: int, explanation: str | None = "daemon says no") -> docker.errors.APIError:
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls("boom", response=_response(status), explanation=explanation)


CASES = [
    (_api(404, "No such container: web"), DockerNotFoundError, "No such container: web"),
    (_api(409, "Conflict. The container name is in use"), DockerConflictError, "in use"),
    (_api(500, "driver failed"), DockerError, "driver failed"),
    (_api(400, None), DockerError, "HTTP 400"),
    (requests.exceptions.ConnectionError("refused"), DockerUnavailableError, "does not answer"),
    (requests.exceptions.ReadTimeout("slow"), DockerError, "did not answer in time"),
    (ConnectionRefusedError(111, "refused"), DockerUnavailableError, "does not answer"),
    (FileNotFoundError(2, "no socket"), DockerUnavailableError, "does not answer"),
    (
        docker.errors.DockerException("Error while fetching server API version: Connection"),
        DockerUnavailableError,
        "does not answer",
    ),
    (docker.errors.DockerException("invalid argument"), DockerError, "invalid argument"),
]


@pytest.mark.parametrize(("exc", "expected", "text"), CASES, ids=lambda v: repr(v)[:40])
def test_translation_table(exc: BaseException, expected: type[DockerError], text: str) -> None:
    mapped = translate(exc, "renaming web")
    assert type(mapped) is expected
    assert mapped.message.startswith("renaming web: ")
    assert text in mapped.message


def test_foreign_exceptions_pass_through() -> None:
    assert translate(ValueError("x"), "a") is None
    with pytest.raises(ValueError), docker_errors("doing"):
        raise ValueError("not docker")


def test_the_context_manager_raises_unchained() -> None:
    with pytest.raises(DockerNotFoundError) as caught, docker_errors("inspecting web"):
        raise _api(404, "No such container: web")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__

"""Real back-end servers for provider tests: an OpenBao dev server and a moto server.

Each runs as a child process on 127.0.0.1 with a free port, its output in a temporary file,
and is stopped by the pid started here (terminate → wait → kill). A parent-death signal makes
sure a killed test run leaves no server behind. Fixtures:

- ``openbao`` (session): KV v2 at ``secret/`` (the dev default) and KV v1 at ``kv1/``;
  AppRole enabled at ``approle/``. Tests must use unique paths (:func:`unique`).
- ``fresh_openbao`` (function): a server of its own, for tests that seal or stop it.
- ``moto`` (session): AWS Secrets Manager + STS + IAM, accepting any credentials.
- ``moto_iam`` (module): a moto server that checks signatures and IAM policies (moto does so
  once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served; here 0 unauthenticated
  requests are allowed after setup through :meth:`MotoServer.admin`, see that fixture).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BAO = VENV_BIN / "bao"
MOTO = VENV_BIN / "moto_server"
START_TIMEOUT = 20.0

#: TLS and proxy variables this machine exports; servers and clients here speak plain http
#: on 127.0.0.1, so they are cleared for every child and client the tests create.
CLEARED_ENV = (
    "AWS_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


def unique(prefix: str = "t") -> str:
    """A fresh secret name, so tests sharing a server never see each other's secrets."""
    return f"{prefix}-{secrets.token_hex(5)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without CA bundles, proxies, Vault or AWS settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CLEARED_ENV and not k.startswith(("VAULT_", "BAO_", "AWS_"))
    }
    env.update(extra or {})
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess:
    """A child server: started, polled until ready, stopped by its own pid."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def _wait_http(url: str, proc: ServerProcess, ok: set[int], ca_file: Path | None = None) -> None:
    import requests

    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"server exited early:\n{proc.output()[-2000:]}")
            # OSError: the -dev-tls CA file is written a moment after the process starts.
            with contextlib.suppress(requests.RequestException, OSError):
                verify = str(ca_file) if ca_file is not None else True
                if session.get(url, timeout=1, verify=verify).status_code in ok:
                    return
            time.sleep(0.05)
    finally:
        session.close()
    raise RuntimeError(f"server not ready after {START_TIMEOUT} s:\n{proc.output()[-2000:]}")


# -- OpenBao ---------------------------------------------------------------------------------


class OpenBao:
    """``bao server -dev`` with a random root token, KV v2 at secret/, KV v1 at kv1/."""

    KV1 = "kv1"

    def __init__(self, workdir: Path, *, tls: bool = False) -> None:
        self.port = free_port()
        scheme = "https" if tls else "http"
        self.address = f"{scheme}://127.0.0.1:{self.port}"
        self.root_token = "root-" + secrets.token_hex(12)
        #: With ``tls``: the CA of the server's self-signed certificate (made by ``-dev-tls``).
        self.ca_file: Path | None = workdir / "vault-ca.pem" if tls else None
        home = workdir / "home"  # bao -dev writes ~/.vault-token: never the real home
        home.mkdir(parents=True, exist_ok=True)
        argv = [
            str(BAO),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        if tls:
            argv += ["-dev-tls", f"-dev-tls-cert-dir={workdir}"]
        self.server = ServerProcess(argv, clean_env({"HOME": str(home)}), workdir / "bao.log")
        try:
            # 429/472/473/501/503 are answers too; wait for "initialized, unsealed, active".
            _wait_http(f"{self.address}/v1/sys/health", self.server, {200}, self.ca_file)
            self._setup()
        except BaseException:
            self.server.stop()
            raise

    def client(self, token: str | None = None) -> Any:
        import hvac

        client = hvac.Client(
            url=self.address,
            token=token or self.root_token,
            timeout=10,
            verify=str(self.ca_file) if self.ca_file else True,
        )
        client.adapter.session.trust_env = False
        return client

    def _setup(self) -> None:
        root = self.client()
        root.sys.enable_secrets_engine("kv", path=self.KV1, options={"version": "1"})
        root.sys.enable_auth_method("approle")

    @property
    def unseal_key(self) -> str:
        match = re.search(r"Unseal Key: (\S+)", self.server.output())
        assert match, "the dev server printed no unseal key"
        return match.group(1)

    def seal(self) -> None:
        self.client().sys.seal()

    def unseal(self) -> None:
        self.client().sys.submit_unseal_key(self.unseal_key)

    def write(self, path: str, data: dict[str, Any], *, mount: str = "secret") -> int | None:
        """Write KV data; returns the new KV v2 version (None for KV v1)."""
        root = self.client()
        if mount == self.KV1:
            root.secrets.kv.v1.create_or_update_secret(path=path, secret=data, mount_point=mount)
            return None
        answer = root.secrets.kv.v2.create_or_update_secret(
            path=path, secret=data, mount_point=mount
        )
        return int(answer["data"]["version"])

    def token(self, policies: list[str], **kwargs: Any) -> str:
        answer = self.client().auth.token.create(policies=policies, **kwargs)
        return str(answer["auth"]["client_token"])

    def policy(self, name: str, rules: str) -> None:
        self.client().sys.create_or_update_policy(name=name, policy=rules)

    def read_policy(self, prefix: str) -> str:
        """The minimal policy of docs/providers/vault.md for KV v2 secrets under ``prefix``."""
        name = f"dso-read-{prefix}"
        self.policy(
            name,
            f'path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}\n'
            f'path "secret/metadata/{prefix}/*" {{ capabilities = ["read", "list"] }}\n',
        )
        return name

    def settings(self, token: str | None = None, **extra: Any) -> dict[str, Any]:
        """vault provider settings for this server (token auth, root token by default)."""
        return {"address": self.address, "token": token or self.root_token, **extra}

    def stop(self) -> None:
        self.server.stop()


# -- moto ------------------------------------------------------------------------------------


class MotoServer:
    """``moto_server`` on a free port; ``admin()`` is a boto3 session for seeding."""

    REGION = "us-east-1"

    def __init__(self, workdir: Path, *, enforce_iam: bool = False) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        extra = {"MOTO_PORT": str(self.port)}
        if enforce_iam:
            # moto checks signatures and IAM policies after this many requests; the fixture
            # makes its setup requests first, with moto's root credentials.
            extra["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        argv = [sys.executable, str(MOTO), "-H", "127.0.0.1", "-p", str(self.port)]
        workdir.mkdir(parents=True, exist_ok=True)
        self.server = ServerProcess(argv, clean_env(extra), workdir / "moto.log")
        try:
            _wait_http(f"{self.endpoint}/moto-api/", self.server, {200})
        except BaseException:
            self.server.stop()
            raise

    def bootstrap_admin(self) -> tuple[str, str]:
        """On an ``enforce_iam`` server: make the 3 unauthenticated requests it allows, creating
        an IAM user with every permission; returns that user's access key id and secret."""
        iam = self.client("iam")
        iam.create_user(UserName="admin")
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        iam.put_user_policy(
            UserName="admin",
            PolicyName="all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        return str(key["AccessKeyId"]), str(key["SecretAccessKey"])

    def session(self, access_key: str = "testing", secret_key: str = "testing") -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=self.REGION,
        )

    def client(self, service: str = "secretsmanager", **keys: str) -> Any:
        return self.session(**keys).client(service, endpoint_url=self.endpoint, verify=False)

    def stop(self) -> None:
        self.server.stop()


# -- provider processes ----------------------------------------------------------------------


def provider_command(program: str) -> Any:
    """``python -m providers.<program>`` as the provider host launches it from source."""
    from kernel.provider_host import ProviderCommand

    return ProviderCommand(
        program,
        (sys.executable, "-m", f"providers.{program}"),
        "source",
        env_set=(("PYTHONPATH", str(REPO)),),
    )


def start_provider(program: str, settings: Mapping[str, Any] | None) -> Any:
    """A real provider process behind the real host client, configured with ``settings``
    (None: started only). The environment it picks from has no CA bundles or proxies."""
    from kernel.provider_host import ProviderClient

    return ProviderClient.start(
        provider_command(program), settings=settings, environ=clean_env(), request_timeout=20
    )


@pytest.fixture
def provider_clients() -> Iterator[list[Any]]:
    """Provider clients a test starts (append them); each is shut down and reaped after."""
    started: list[Any] = []
    yield started
    for client in started:
        client.close(grace=1.0)


def one(client: Any, ref: Any) -> tuple[bytes, str]:
    """The value and version of one reference, which must succeed."""
    result = client.get([ref])
    assert ref.id not in result.errors, result.errors
    data = result.values[ref.id]
    return data.value, data.version


def error_code(client: Any, ref: Any, method: str = "get") -> Any:
    """The wire code one reference fails with, in a ``get`` or ``versions`` batch."""
    result = getattr(client, method)([ref])
    assert ref.id in result.errors, f"{ref.path} unexpectedly succeeded"
    return result.errors[ref.id].code


def provider_logs(caplog: pytest.LogCaptureFixture) -> str:
    """What provider processes logged (re-logged by the host under ``dso.provider.*``); the
    test process's own client libraries, whose debug logs do show values, are left out."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("dso.provider"))


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    server = OpenBao(tmp_path_factory.mktemp("openbao"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_openbao(tmp_path: Path) -> Iterator[OpenBao]:
    server = OpenBao(tmp_path / "openbao")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def no_ca_bundles(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine exports CA bundle variables; in-process clients must not depend on them."""
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)

"""What every ``dso-provider-<name>.spec`` shares: one onedir bundle per provider.

A spec calls :func:`provider_bundle` with the provider's name and what to trim. The bundle is
``<distpath>/dso-provider-<name>/dso-provider-<name>`` plus its ``_internal/`` directory
(onedir: it starts 2.5-14x faster than onefile and leaves nothing in /tmp when killed, DESIGN
§9). Run through ``build/build_providers.py`` (``make build``), which passes ``--workpath`` and
``--distpath`` so PyInstaller never writes into this source ``build/`` directory.

Trimming, each checked by the frozen conformance run (tests/e2e/test_frozen_providers.py):

- botocore's data: hooks-contrib collects every service model (28 MB); the aws provider keeps
  the shared files (endpoints, partitions, retry and default configuration) and the models of
  the services it calls (:data:`AWS_SERVICES`). boto3's resource models are dropped (clients
  only).
- modules no provider runs: the kernel's CLI stack (click, rich, docker, pluggy, yaml), test
  tools, tkinter, pydoc and friends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from PyInstaller.building.build_main import COLLECT, EXE, PYZ, Analysis

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: AWS services whose botocore models the aws provider needs: Secrets Manager for the secrets,
#: STS for assume-role and web identity, SSO/SSO-OIDC for profiles that log in with IAM
#: Identity Center.
AWS_SERVICES = ("secretsmanager", "sts", "sso", "sso-oidc")

#: Never needed by a provider process.
EXCLUDES = (
    "tkinter",
    "_tkinter",
    "unittest",
    "pydoc",
    "doctest",
    "lib2to3",
    "pdb",
    "setuptools",
    "pkg_resources",
    "pip",
    "distutils",
    "IPython",
    "pytest",
    "_pytest",
    "hypothesis",
    "moto",
    "click",
    "rich",
    "docker",
    "pluggy",
    "yaml",
)

#: For providers that never use ``cryptography`` (vault, aws): requests and botocore only try
#: ``urllib3.contrib.pyopenssl`` (needs pyOpenSSL, not installed) and fall back to ``ssl``, but
#: the analysis follows that import into cryptography (12 MB).
NO_CRYPTOGRAPHY = ("cryptography", "urllib3.contrib.pyopenssl", "OpenSSL")

Entry = tuple[str, str, str]


def keep_botocore_data(datas: Iterable[Entry], services: Sequence[str]) -> list[Entry]:
    """``datas`` without the botocore service models outside ``services`` and without
    boto3's resource models; botocore's top-level data files are kept."""
    kept: list[Entry] = []
    for entry in datas:
        parts = PurePosixPath(entry[0].replace("\\", "/")).parts
        if parts[:2] == ("botocore", "data") and len(parts) > 3 and parts[2] not in services:
            continue
        if parts[:2] == ("boto3", "data"):
            continue
        kept.append(entry)
    return kept


def provider_bundle(
    name: str,
    *,
    hiddenimports: Sequence[str] = (),
    excludes: Sequence[str] = (),
    aws_services: Sequence[str] | None = None,
) -> None:
    """Declare the analysis, executable and onedir collection of ``dso-provider-<name>``."""
    program = f"dso-provider-{name}"
    analysis = Analysis(
        [str(HERE / "entries" / f"dso_provider_{name}.py")],
        pathex=[str(REPO)],
        # The entry runs providers/<name>/__main__.py through runpy: name it for the analysis.
        hiddenimports=[f"providers.{name}.__main__", *hiddenimports],
        excludes=[*EXCLUDES, *excludes],
        noarchive=False,
    )
    if aws_services is not None:
        analysis.datas = keep_botocore_data(analysis.datas, aws_services)
    pyz = PYZ(analysis.pure)
    exe = EXE(
        pyz,
        analysis.scripts,
        [],
        exclude_binaries=True,
        name=program,
        strip=True,
        upx=False,
        console=True,
    )
    COLLECT(exe, analysis.binaries, analysis.datas, strip=True, upx=False, name=program)

"""What every spec shares: one onedir bundle per program.

- ``dso-provider-<name>.spec`` calls :func:`provider_bundle` with the provider's name and what to
  trim: ``<distpath>/dso-provider-<name>/dso-provider-<name>`` plus its ``_internal/``.
- ``dso.spec`` calls :func:`kernel_bundle`: ``<distpath>/dso/dso``, the kernel and its CLI, which
  is also the Docker CLI plugin (run as ``docker-dso``, through a link, it behaves as the plugin:
  :func:`kernel.cli.docker_plugin.entry`).

Onedir: it starts 2.5-14x faster than onefile and leaves nothing in /tmp when killed (DESIGN §9).
Run through ``build/build_providers.py`` (``make build``) or ``build/build_release.py`` (``make
dist``), which pass ``--workpath`` and ``--distpath`` so PyInstaller never writes into this source
``build/`` directory.

Trimming of the providers, each checked by the frozen conformance run
(tests/e2e/test_frozen_providers.py):

- botocore's data: hooks-contrib collects every service model (28 MB); the aws provider keeps
  the shared files (endpoints, partitions, retry and default configuration) and the models of
  the services it calls (:data:`AWS_SERVICES`). boto3's resource models are dropped (clients
  only).
- modules no provider runs: the kernel's CLI stack (click, rich, docker, pluggy, yaml), test
  tools, tkinter, pydoc and friends.

The kernel imports its commands, extensions and agent parts by name (``importlib``, the COMMANDS
table of kernel/cli/main.py), which no analysis can follow: every module of the ``kernel``
package is named as a hidden import (:func:`kernel_modules`, from the files). It never imports a
provider SDK nor ``providers`` (import-linter contracts), so those are excluded outright.

Every bundle starts as fast as ``python -m`` from a venv (docs/building.md has the figures),
where a default bundle starts 25-40 ms slower, by two changes:

- ``noarchive``: modules are ``.pyc`` files in ``_internal/`` instead of the compressed PYZ
  archive inside the executable (~25 ms less for ``dso version``, ~30 ms for the azure
  provider's handshake: every module is inflated from the archive otherwise). For a provider
  this moves its Python code out of the executable that the kernel hashes before exec; it does
  not change what that hash protects: ``_internal/`` already holds the interpreter
  (``libpython``), the extension modules and ``base_library.zip`` (the stdlib the interpreter
  starts with), none of them hashed, so whoever can write ``_internal/`` could already run
  anything in the provider. The plugins directory's permissions protect the bundle; the
  release's own ``SHA256SUMS`` lists every file of the kernel bundle.
- ``hooks/rthooks.dat`` replaces PyInstaller's run-time hooks of ``inspect`` (which also imports
  ``zipfile`` and reads ``base_library.zip``), ``pkgutil`` and ``multiprocessing`` with a hook
  that does nothing (``hooks/rthooks/pyi_rth_dso_skip.py`` says why none is needed): they import
  those modules at every start (~35 ms of the local provider's start under load). No provider
  or SDK it bundles calls ``inspect.getsource``, ``pkgutil.iter_modules`` or
  ``multiprocessing``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from PyInstaller.building.build_main import COLLECT, EXE, PYZ, Analysis

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: The bundles' hook directory (its run-time hooks replace three of PyInstaller's).
HOOKS = HERE / "hooks"

#: AWS services whose botocore models the aws provider needs: Secrets Manager for the secrets,
#: STS for assume-role and web identity, SSO/SSO-OIDC for profiles that log in with IAM
#: Identity Center.
AWS_SERVICES = ("secretsmanager", "sts", "sso", "sso-oidc")

#: Never needed by any dso program.
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
)

#: Never needed by a provider process: the kernel's CLI stack.
PROVIDER_EXCLUDES = ("click", "rich", "docker", "pluggy", "yaml")

#: Never imported by the kernel (the ``kernel-no-providers`` and ``provider-sdks`` contracts).
KERNEL_EXCLUDES = ("providers", "hvac", "boto3", "botocore", "azure", "msal", "PyInstaller")

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


def kernel_modules(root: Path = REPO) -> list[str]:
    """Every module of the ``kernel`` package (``kernel``, ``kernel.cli.main``, …), from its
    ``*.py`` files, sorted."""
    names = []
    for path in sorted((root / "kernel").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def _onedir(program: str, analysis: Analysis) -> None:
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


def provider_bundle(
    name: str,
    *,
    hiddenimports: Sequence[str] = (),
    excludes: Sequence[str] = (),
    aws_services: Sequence[str] | None = None,
) -> None:
    """Declare the analysis, executable and onedir collection of ``dso-provider-<name>``."""
    analysis = Analysis(
        [str(HERE / "entries" / f"dso_provider_{name}.py")],
        pathex=[str(REPO)],
        # The entry runs providers/<name>/__main__.py through runpy: name it for the analysis.
        hiddenimports=[f"providers.{name}.__main__", *hiddenimports],
        hookspath=[str(HOOKS)],
        excludes=[*EXCLUDES, *PROVIDER_EXCLUDES, *excludes],
        noarchive=True,
    )
    if aws_services is not None:
        analysis.datas = keep_botocore_data(analysis.datas, aws_services)
    _onedir(f"dso-provider-{name}", analysis)


def kernel_bundle(
    *,
    hiddenimports: Sequence[str] = (),
    excludes: Sequence[str] = (),
    datas: Sequence[tuple[str, str]] = (),
) -> None:
    """Declare the analysis, executable and onedir collection of ``dso``; ``datas`` are
    (source, destination directory) pairs of package data, as pyproject.toml declares it."""
    analysis = Analysis(
        [str(HERE / "entries" / "dso_kernel.py")],
        pathex=[str(REPO)],
        hiddenimports=[*kernel_modules(), *hiddenimports],
        datas=[(str(REPO / source), target) for source, target in datas],
        hookspath=[str(HOOKS)],
        excludes=[*EXCLUDES, *KERNEL_EXCLUDES, *excludes],
        noarchive=True,
    )
    _onedir("dso", analysis)

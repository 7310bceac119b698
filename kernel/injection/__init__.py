"""Secret injection: resolving references to values, and delivering files on a host tmpfs.

- :mod:`~kernel.injection.resolver`: the :class:`Resolver` interface;
- :mod:`~kernel.injection.host_resolver`: the resolver backed by the provider processes;
- :mod:`~kernel.injection.tmpfs`: the per-service directories on a verified tmpfs;
- :mod:`~kernel.injection.atomic_dir`: the atomic ``..data`` publication of a set of files;
- :mod:`~kernel.injection.filenames`: the file name a variable gets in the container.

Compose specifics (reading the project, rewriting it, running compose) live in
:mod:`kernel.compose`.
"""

from __future__ import annotations

from kernel.injection.atomic_dir import DATA, Owner, publish
from kernel.injection.filenames import file_name
from kernel.injection.host_resolver import ProviderHostResolver
from kernel.injection.resolver import LOCAL, Outcome, Resolved, Resolver, require
from kernel.injection.tmpfs import SECRETS_DIR_ENV, TMPFS_MAGIC, SecretsDir, default_base

__all__ = [
    "DATA",
    "LOCAL",
    "SECRETS_DIR_ENV",
    "TMPFS_MAGIC",
    "Outcome",
    "Owner",
    "ProviderHostResolver",
    "Resolved",
    "Resolver",
    "SecretsDir",
    "default_base",
    "file_name",
    "publish",
    "require",
]

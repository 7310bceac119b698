"""Docker Compose integration: read a project as compose does, inject secrets, run compose.

- :mod:`~kernel.compose.args`: compose's global flags vs. the command's own;
- :mod:`~kernel.compose.files`: the project's files and working directory, ``file:line`` lookup;
- :mod:`~kernel.compose.runner`: every ``docker compose`` / ``docker`` process;
- :mod:`~kernel.compose.scan`: references in services' ``environment`` and their problems;
- :mod:`~kernel.compose.rewrite`: the model compose runs (placeholders, mounts, labels);
- :mod:`~kernel.compose.inject`: the steps of ``up`` and ``validate``;
- ``migrate_*``: ``docker dso migrate`` (read the files as written, detect, plan, edit, write).

User documentation: docs/compose.md.
"""

from __future__ import annotations

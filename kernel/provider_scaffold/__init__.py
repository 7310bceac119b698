"""``docker dso providers new NAME``: a Python provider project on the SDK that starts green.

    from kernel.provider_scaffold import scaffold

    project = scaffold("files", Path("dso-provider-files"))

The templates are package data (``templates/*.tmpl``, in the frozen dso too: see
build/pyinstaller/dso.spec); :mod:`.scaffold` fills them in.
"""

from __future__ import annotations

from kernel.provider_scaffold.scaffold import Project, module_name, scaffold

__all__ = ["Project", "module_name", "scaffold"]

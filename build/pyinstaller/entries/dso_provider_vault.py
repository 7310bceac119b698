"""Entry point of the frozen ``dso-provider-vault``.

Runs providers/vault/__main__.py as ``__main__``, exactly as ``python -m providers.vault`` does from
source, so the frozen program and the source program cannot drift apart.
"""

import runpy

runpy.run_module("providers.vault.__main__", run_name="__main__", alter_sys=True)

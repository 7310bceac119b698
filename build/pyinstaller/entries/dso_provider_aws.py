"""Entry point of the frozen ``dso-provider-aws``.

Runs providers/aws/__main__.py as ``__main__``, exactly as ``python -m providers.aws`` does from
source, so the frozen program and the source program cannot drift apart.
"""

import runpy

runpy.run_module("providers.aws.__main__", run_name="__main__", alter_sys=True)

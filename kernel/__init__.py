"""dso kernel: config, state, the provider host, the rotation engine, the agent and the CLI.

This package's import must stay cheap: ``docker-dso docker-cli-plugin-metadata`` imports it
before every ``docker`` call. Heavy names are loaded on first attribute access.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing: the metadata call would pay for it.
TYPE_CHECKING = False
if TYPE_CHECKING:  # type checkers see the real marker; at run time it is made on first use
    from typing import Any

    import pluggy

    hookimpl: pluggy.HookimplMarker

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        import pluggy

        return pluggy.HookimplMarker("dso")
    raise AttributeError(f"module 'kernel' has no attribute {name!r}")

"""``python -m providers.local``: run the local vault provider (``--describe`` for metadata)."""

from __future__ import annotations

from providers.local.provider import LocalProvider
from providers.sdk import serve

if __name__ == "__main__":
    serve(LocalProvider)

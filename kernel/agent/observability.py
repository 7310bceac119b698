"""``status --json`` ``.observability``. STUB: being written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel.agent.bus import EventBus


class Observability:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def doc(self) -> dict[str, Any]:
        return {}

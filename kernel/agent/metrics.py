"""Prometheus metrics of the agent (``prometheus_client``). STUB: being written."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernel.agent.daemon import Agent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AgentMetrics:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def start(self) -> None:
        return None

    def render(self) -> bytes:
        return b""

    def close(self) -> None:
        return None

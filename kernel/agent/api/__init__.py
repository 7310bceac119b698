"""The agent's socket API: one listener, two dialects (HTTP/1.1 and JSON lines), one table of
actions (docs/agent-api.md). ``server`` listens, ``peers`` decides who may ask, ``wire`` bounds
what a client can send, ``http_dialect``/``lines_dialect`` frame, ``actions`` answers,
``client`` is what commands use."""

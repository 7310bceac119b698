"""Docker Swarm: stack files whose ``dsofile://`` references become versioned Swarm secrets.

- :mod:`kernel.swarm.secret_versions`: names, labels, creating dso's secrets, and which versions
  services and tasks still use (not ``secrets.py``: no module is named after the stdlib);
- :mod:`kernel.swarm.stack`: rewriting a stack file for ``docker stack deploy``.

The Docker calls themselves are in :mod:`kernel.containers.swarm`. Docs: ``docs/swarm.md``.
"""

"""Docker Swarm: stack files whose ``dsofile://`` references become versioned Swarm secrets.

- :mod:`kernel.swarm.secret_versions`: names, labels, creating dso's secrets, and which versions
  services and tasks still use (not ``secrets.py``: no module is named after the stdlib);
- :mod:`kernel.swarm.stack`: rewriting a stack file for ``docker stack deploy``;
- :mod:`kernel.swarm.deploy`: the steps of ``docker dso stack deploy`` and ``stack rm``;
- :mod:`kernel.swarm.rotation` and :mod:`kernel.swarm.recovery`: rotating Swarm services
  through service updates (strategy ``swarm``), and converging a rotation a crash interrupted;
  the rotation's parts: :mod:`~kernel.swarm.targets` (which services ``rotate`` means, their
  locks), :mod:`~kernel.swarm.services` (a service and dso's secrets it mounts),
  :mod:`~kernel.swarm.plan` (the swaps, the updated spec), :mod:`~kernel.swarm.steps` (the
  journaled steps), :mod:`~kernel.swarm.convergence` (waiting for the engine's update) and
  :mod:`~kernel.swarm.unused_versions` (removing the versions nothing uses).

The Docker calls themselves are in :mod:`kernel.containers.swarm` (and ``swarm_update``).
Docs: ``docs/swarm.md``.
"""

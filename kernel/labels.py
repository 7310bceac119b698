"""Every container and volume label dso reads or writes, named once.

Labels hold references, version fingerprints, digests and settings, never secret values. dso's
own labels start with ``dso.``; the ``com.docker.compose.*`` ones are compose's, read (and, for
the config hash, renewed) by dso. Docs: ``docs/compose.md`` (what ``up`` writes) and
``docs/rotation.md`` (what rotations read and write).
"""

from __future__ import annotations

# -- written by ``docker dso up`` on the containers of services that use references ------------

#: Variable → secret reference as written in the compose file (JSON object).
REFS_LABEL = "dso.refs"
#: Variable → ``provider:version`` the container received (JSON object); a rotation renews it.
VERSIONS_LABEL = "dso.versions"
#: Digest of the rewritten service without values, placeholder names and versions: a rotation
#: renews compose's config hash only when the project read now still gives this digest.
CONFIG_HASH_LABEL = "dso.config-hash"

# -- set by the user ---------------------------------------------------------------------------

#: Service label: the directory ``dsofile://`` files appear in inside the container (compose
#: drops ``x-`` keys of services, so it is a label). Default ``/run/secrets/dso``.
MOUNT_LABEL = "dso.secrets.path"
#: Container label choosing the rotation strategy of that container (overrides the config).
STRATEGY_LABEL = "dso.strategy"
#: Container label: how many replicas of its compose service rotate at the same time once the
#: first one (the canary) has rotated alone (``rotate --parallel`` overrides it; default 1).
PARALLEL_LABEL = "dso.parallel"
#: Container label naming the signal the ``reload`` strategy sends (default SIGHUP).
RELOAD_SIGNAL_LABEL = "dso.reload.signal"
#: Container label listing volume names (comma-separated, or ``*``) two copies may share.
SHARED_VOLUMES_LABEL = "dso.shared-volumes"
#: Volume label (``true``) marking a volume as safe to share between two copies of a container.
SHARED_VOLUME_LABEL = "dso.shared"
#: Health probe labels, for images without a HEALTHCHECK: a shell command (or JSON array) run
#: inside the container; a port connected to from the host; ``PORT[/path]`` for an HTTP GET
#: from the host; a duration the container must stay up.
HEALTH_EXEC_LABEL = "dso.health.exec"
HEALTH_TCP_LABEL = "dso.health.tcp"
HEALTH_HTTP_LABEL = "dso.health.http"
HEALTH_RUNNING_LABEL = "dso.health.running"

# -- written by a rotation on the container it creates -----------------------------------------

#: The rotation id.
ROTATION_LABEL = "dso.rotation"
#: The dso installation (a digest of the host and its journal's path) that manages the container,
#: written by ``docker dso up`` and kept by every rotation: its agent rotates it, no other
#: installation's agent does, and ``recover`` only touches leftovers of its own installation,
#: never another one's rotation in flight.
OWNER_LABEL = "dso.rotation.owner"

# -- compose's own labels ----------------------------------------------------------------------

#: The compose project of a container.
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
#: The compose service of a container.
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
#: The replica number (``1``, ``2``…): replicas are rotated in that order.
COMPOSE_NUMBER_LABEL = "com.docker.compose.container-number"
#: ``True`` on a ``docker compose run`` container: not a replica of its service.
COMPOSE_ONEOFF_LABEL = "com.docker.compose.oneoff"
#: The hash compose compares with the model's hash of the service to decide on recreating it;
#: a rotation renews it (:mod:`kernel.compose.confighash`).
COMPOSE_HASH_LABEL = "com.docker.compose.config-hash"

# -- on the Swarm secrets ``docker dso stack deploy`` and swarm rotations create --------------
#: ``true``: a Swarm secret dso created (and may remove once no task uses it).
SWARM_MANAGED_LABEL = "dso.managed"
#: The stack the secret was created for.
SWARM_STACK_LABEL = "dso.stack"
#: The secret's name in the stack file without stack and fingerprint (``app_db_password``).
SWARM_NAME_LABEL = "dso.secret"
#: The reference the value was resolved from (as written, never a value).
SWARM_REFERENCE_LABEL = "dso.reference"
#: ``provider:version`` of the value the secret holds.
SWARM_VERSION_LABEL = "dso.version"

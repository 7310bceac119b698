"""The agent's systemd unit: one template, rendered by ``bootstrap agent`` and the Debian package.

The spec's unit ("Systemd Service Configuration") with what ``systemd-analyze verify`` requires
and what a careful operator expects of a root service that drives Docker:

- ``Type=notify``: systemd considers the agent started when it sends ``READY=1``, which it does
  only after crash recovery ran and its socket listens (:mod:`kernel.agent.service_manager`), so
  ``systemctl start`` (and ``docker dso system enable``) return when it can answer.
- ``WatchdogSec``: the agent's main loop pings; a loop stuck for that long is killed and
  restarted (``Restart=on-failure`` covers watchdog timeouts).
- ``StartLimitIntervalSec``/``StartLimitBurst`` live in ``[Unit]`` (``StartLimitInterval=`` in
  ``[Service]``, as the spec writes it, is an obsolete alias that ``verify`` warns about).
- ``RuntimeDirectory=dso`` with ``RuntimeDirectoryPreserve=yes``: the containers' ``dsofile://``
  files are bind-mounted from ``/run/dso/secrets``; without Preserve, systemd deletes the
  directory whenever the service stops or restarts and pulls the files out from under running
  containers. A reboot empties ``/run`` anyway; the agent delivers them again at start.
- ``StateDirectory``/``LogsDirectory``: ``/var/lib/dso`` and ``/var/log/dso`` exist with the
  right owner and mode before the agent starts, and stay writable under ``ProtectSystem=strict``.
- Hardening as far as a root agent that drives Docker allows: it must reach
  ``/run/docker.sock`` (AF_UNIX), providers over the network (AF_INET/6), chown secret files to
  each service's user (CAP_CHOWN, CAP_FOWNER, CAP_DAC_OVERRIDE), read ``/proc/<pid>`` of
  socket peers (CAP_SYS_PTRACE is not needed for ``/proc/<pid>/status`` as root, but
  ``ProtectProc=invisible`` would hide them) and read compose files under ``/home`` (read-only).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["UNIT_NAME", "UNIT_PATH", "render_unit"]

#: The unit's name (spec: ``dso-agent``).
UNIT_NAME = "dso-agent.service"
#: Where ``bootstrap agent`` writes it (the Debian package ships it in /lib/systemd/system).
UNIT_PATH = Path("/etc/systemd/system") / UNIT_NAME
#: The program the unit runs (spec: ``/usr/local/bin/dso``, a link into a versioned release).
DEFAULT_EXECUTABLE = "/usr/local/bin/dso"
#: The configuration it reads.
DEFAULT_CONFIG = "/etc/dso/dso.yaml"
#: Seconds without a watchdog ping before systemd kills and restarts the agent.
WATCHDOG_SEC = 30

_TEMPLATE = """\
# Written by `docker dso bootstrap agent` (dso {version}). Local changes belong in a drop-in:
#   sudo systemctl edit dso-agent
[Unit]
Description=DSO Secret Injection Runtime Agent
Documentation=https://github.com/docker-secret-operator/dso
After=docker.service network-online.target
Wants=network-online.target
Requires=docker.service
StartLimitIntervalSec=60s
StartLimitBurst=3

[Service]
Type=notify
NotifyAccess=main
User=root
Group=root
WorkingDirectory=/var/lib/dso
ExecStart={executable} --config {config} agent --mode agent
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=10
TimeoutStartSec=120
TimeoutStopSec=90
WatchdogSec={watchdog}
StandardOutput=journal
StandardError=journal
SyslogIdentifier=dso-agent
LimitNOFILE=65535
UMask=0077

# Directories systemd creates (and keeps writable under ProtectSystem=strict).
# 0755: systemd sets it root:root at every start; members of group dso reach the socket
# (0660 root:dso) through it. Nothing in it is readable but by its owners (secrets/ is 0700).
RuntimeDirectory=dso
RuntimeDirectoryMode=0755
# The containers' secret files live in /run/dso/secrets: never delete them at stop or restart.
RuntimeDirectoryPreserve=yes
StateDirectory=dso
StateDirectoryMode=0750
LogsDirectory=dso
LogsDirectoryMode=0750
# iptables (legacy) takes Docker's xtables lock to add the drain rules of a swap.
ReadWritePaths=-/run/xtables.lock

# Hardening (docs/operations.md: what each key allows and why the others are absent).
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_KILL
# The host iptables rules that drain an old container before it leaves its networks
# (kernel/containers/drain.py); a second line adds to the set.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
AmbientCapabilities=
KeyringMode=private
RemoveIPC=yes

[Install]
WantedBy=multi-user.target
"""


def render_unit(
    executable: str = DEFAULT_EXECUTABLE,
    config: str = DEFAULT_CONFIG,
    *,
    watchdog: int = WATCHDOG_SEC,
) -> str:
    """The text of ``dso-agent.service`` for this dso."""
    from kernel import __version__

    return _TEMPLATE.format(
        version=__version__, executable=executable, config=config, watchdog=watchdog
    )

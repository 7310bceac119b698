"""The host side of agent mode: the systemd unit, ``systemctl`` and ``journalctl``.

Modules: ``unit`` (the dso-agent unit file, rendered from one template), ``service`` and its
helpers (systemctl and journalctl for ``docker dso system …`` and ``doctor``). Writing the unit
and the directories is :mod:`kernel.bootstrap`'s.
"""

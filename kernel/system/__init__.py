"""The host side of agent mode: the systemd unit, ``systemctl``/``journalctl``, bootstrap.

Modules: ``unit`` (the dso-agent unit file, rendered from one template), ``service`` (systemctl and
journalctl for ``docker dso system …``), ``bootstrap`` (the directories, config, group and unit of
a host agent or a user's ``~/.dso``).
"""

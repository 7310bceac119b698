"""Entry point of the frozen ``dso``: the CLI, or the Docker CLI plugin when run as ``docker-dso``.

One executable serves both names (a link ``…/cli-plugins/docker-dso`` to it), so switching
``/usr/local/bin/dso`` to another release switches ``docker dso`` with it.
"""

from kernel.cli.docker_plugin import entry

entry()

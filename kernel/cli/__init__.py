"""The ``dso`` / ``docker dso`` command line: one module per command group.

Only this package imports click; the rest of the kernel raises :class:`~kernel.errors.DSOError`
and this layer turns it into one line on stderr and an exit code.
"""

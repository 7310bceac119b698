"""Run-time hook of the frozen dso and its providers that does nothing: it stands in for
PyInstaller's hooks of ``inspect``, ``pkgutil`` and ``multiprocessing`` (rthooks.dat beside this
directory), which import those modules at every start. The bundles ship no source for
``inspect.getsource`` to find anyway, keep their modules as ``.pyc`` files (``noarchive``) that
``pkgutil`` lists without help, and no dso program starts ``multiprocessing`` children."""

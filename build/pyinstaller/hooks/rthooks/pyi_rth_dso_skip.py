"""Run-time hook of the frozen dso that does nothing: it stands in for PyInstaller's hooks of
``inspect``, ``pkgutil`` and ``multiprocessing`` (rthooks.dat beside this directory), which import
those modules at every start. The bundle ships no source for ``inspect.getsource`` to find anyway,
keeps its modules as ``.pyc`` files (``noarchive``) that ``pkgutil`` lists without help, and dso
never starts ``multiprocessing`` children."""

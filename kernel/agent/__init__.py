"""The long-running agent: change sources, debounce, scheduling and state of `dso agent`."""

"""Everything that talks to the Docker daemon. ``docker.errors.*`` are translated here."""

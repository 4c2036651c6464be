"""musl-pbs: relocatable, dynamically linked musl CPython distributions from Alpine's python3."""

__version__ = "0.1.0"

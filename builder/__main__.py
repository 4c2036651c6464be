"""``python -m builder``: the same as the ``musl-pbs`` command."""

from builder.cli import entry

if __name__ == "__main__":
    entry()

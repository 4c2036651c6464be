"""Root filesystems for `detect`, made from real Debian packages (see debs.py)."""

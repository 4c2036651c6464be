"""What runs on the user's own system: detect (musl or glibc?) and install."""

"""Low-level helpers the stages share: ELF reading and patching, containers and images,
tar extraction, root filesystems, the apk database, JSON files, wheels."""

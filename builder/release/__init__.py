"""Publishing: release assembly, uv's download metadata, SBOMs, Alpine's release documents."""

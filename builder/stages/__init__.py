"""The pipeline stages, in order:
acquire -> stage (closure) -> relocate -> pack -> verify (audit)."""

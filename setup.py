"""Ship the repository's matrix.yaml and recipes/ inside the package.

The repository root keeps the one copy of both. Building the package (a wheel, from the
checkout or from the sdist, which MANIFEST.in makes carry them) copies them to
builder/defaults/, where an installed musl-pbs finds them (builder/config.py). Everything
else about the package is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PACKAGED = Path("builder", "defaults")  # builder/config.py: PACKAGED


def _defaults() -> list[Path]:
    """matrix.yaml and recipes/*.yaml, relative to the project root (setuptools' cwd)."""
    recipes = sorted(Path("recipes").glob("*.yaml"))
    if not Path("matrix.yaml").is_file() or not recipes:
        raise SystemExit("matrix.yaml and recipes/*.yaml must be at the project root "
                         "(an sdist made without MANIFEST.in lacks them)")
    return [Path("matrix.yaml"), *recipes]


class BuildPyWithDefaults(build_py):
    """build_py, then the defaults copied into the built package."""

    def run(self) -> None:
        super().run()
        for source, built in self._default_files().items():
            self.mkpath(str(Path(built).parent))
            self.copy_file(source, built)

    def _default_files(self) -> dict[str, str]:
        return {str(p): str(Path(self.build_lib, PACKAGED, p)) for p in _defaults()}

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *self._default_files().values()]

    def get_output_mapping(self) -> dict[str, str]:
        mapping = dict(super().get_output_mapping())
        mapping.update({built: source for source, built in self._default_files().items()})
        return mapping


setup(cmdclass={"build_py": BuildPyWithDefaults})

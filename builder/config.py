"""matrix.yaml and recipes/ -> frozen, validated dataclasses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from builder.errors import ConfigError
from builder.platforms import get_arch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MATRIX = REPO_ROOT / "matrix.yaml"
DEFAULT_RECIPES = REPO_ROOT / "recipes"
_MINOR = re.compile(r"^3\.\d+$")


@dataclass(frozen=True)
class Recipe:
    python: str  # "3.11"
    packages: tuple[str, ...]
    optional_packages: tuple[str, ...]
    prune: tuple[str, ...]
    required_extensions: tuple[str, ...]
    expected_extensions: tuple[str, ...]
    source: Path

    def install_command(self, packages: tuple[str, ...] | None = None) -> list[str]:
        return ["apk", "add", "--no-cache", *(packages or self.packages)]


@dataclass(frozen=True)
class Release:
    tag: str
    python: str
    musl: str
    arches: tuple[str, ...]


@dataclass(frozen=True)
class Matrix:
    image_template: str
    default_release: str
    releases: tuple[Release, ...]
    source: Path

    def release(self, tag: str) -> Release | None:
        for r in self.releases:
            if r.tag == tag:
                return r
        return None

    def image_for(self, tag: str) -> str:
        return self.image_template.format(tag=tag)


def _str_list(data: dict[str, Any], key: str, where: Path) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key!r} must be a list of strings")
    return tuple(value)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_recipe(minor: str, recipes_dir: Path = DEFAULT_RECIPES) -> Recipe:
    path = recipes_dir / f"python{minor}.yaml"
    if not path.exists():
        have = sorted(p.stem.removeprefix("python") for p in recipes_dir.glob("python*.yaml"))
        raise ConfigError(
            f"no recipe for Python {minor} in {recipes_dir}",
            hint=f"add {path.name} (recipes exist for: {', '.join(have) or 'none'})",
        )
    data = _load_yaml(path)
    known = {"python", "packages", "optional_packages", "prune", "required_extensions",
             "expected_extensions"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    if str(data.get("python")) != minor:
        raise ConfigError(f"{path}: 'python' must be {minor!r}")
    packages = _str_list(data, "packages", path)
    if not packages:
        raise ConfigError(f"{path}: 'packages' must name at least one package")
    return Recipe(
        python=minor,
        packages=packages,
        optional_packages=_str_list(data, "optional_packages", path),
        prune=_str_list(data, "prune", path),
        required_extensions=_str_list(data, "required_extensions", path),
        expected_extensions=_str_list(data, "expected_extensions", path),
        source=path,
    )


def load_matrix(path: Path = DEFAULT_MATRIX) -> Matrix:
    data = _load_yaml(path)
    releases_raw = data.get("releases")
    if not isinstance(releases_raw, dict) or not releases_raw:
        raise ConfigError(f"{path}: 'releases' must be a non-empty mapping")
    releases = []
    for tag, body in releases_raw.items():
        tag = str(tag)
        if not re.fullmatch(r"\d+\.\d+|edge", tag):
            raise ConfigError(f"{path}: release tag {tag!r} is not like '3.19' or 'edge'")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: release {tag}: expected a mapping")
        python = str(body.get("python", ""))
        if not _MINOR.match(python):
            raise ConfigError(f"{path}: release {tag}: 'python' must be like '3.12'")
        arches = _str_list(body, "arches", path)
        for a in arches:
            get_arch(a)
        releases.append(Release(tag, python, str(body.get("musl", "")), arches))
    template = str(data.get("image", "alpine:{tag}"))
    default = str(data.get("default_release", releases[-1].tag))
    return Matrix(template, default, tuple(releases), path)

"""matrix.yaml and recipes/ -> frozen, validated dataclasses."""

from __future__ import annotations

import atexit
import datetime as dt
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from builder.errors import ConfigError, UnknownArchError
from builder.lowlevel.boundedio import CAP_CONFIG, read_capped_text
from builder.lowlevel.yamlio import parse_yaml
from builder.platforms import get_arch

# musl-pbs's own matrix.yaml and recipes/. The repository root holds the one copy; a built
# package carries it as package data in builder/defaults/ (setup.py copies it there, MANIFEST.in
# puts it in the sdist).
PACKAGED = "defaults"


def _extracted(packaged: Traversable) -> Path:
    """The packaged defaults as real files, for an import from a zip (a wheel on sys.path):
    copied to a temporary directory removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="musl-pbs-defaults-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / "recipes").mkdir()
    (root / "matrix.yaml").write_bytes((packaged / "matrix.yaml").read_bytes())
    for recipe in (packaged / "recipes").iterdir():
        if recipe.name.endswith(".yaml"):
            (root / "recipes" / recipe.name).write_bytes(recipe.read_bytes())
    return root


def defaults_dir() -> Path:
    """Where musl-pbs's own matrix.yaml and recipes/ are: the repository root when the package
    runs from a checkout (editable install, tests), else the copy inside the package."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "matrix.yaml").is_file():
        return checkout
    packaged = resources.files("builder") / PACKAGED
    if isinstance(packaged, Path):
        return packaged
    return _extracted(packaged)


DEFAULTS_DIR = defaults_dir()
DEFAULT_MATRIX = DEFAULTS_DIR / "matrix.yaml"
DEFAULT_RECIPES = DEFAULTS_DIR / "recipes"
_MINOR = re.compile(r"^3\.\d+$")

# Where a command's matrix.yaml and recipes/ came from (ConfigFiles.*_from).
FROM_FLAG = "given with {flag}"
FROM_CWD = "from the current directory"
FROM_BESIDE = "beside that matrix.yaml"
FROM_DEFAULT = "musl-pbs's default"

# What --help says about the search order (build, matrix, alpine).
MATRIX_ORDER = "./matrix.yaml when the current directory has one, else musl-pbs's default"
RECIPES_ORDER = ("the recipes/ beside the matrix.yaml in use when that is not musl-pbs's "
                 "default and has one, else musl-pbs's default")


@dataclass(frozen=True)
class ConfigFiles:
    """The matrix.yaml and recipes/ a command uses, and where each came from: the flag wins,
    then ./matrix.yaml (a release repository's own, recipes/ beside it), then the default."""

    matrix: Path
    matrix_from: str
    recipes: Path
    recipes_from: str

    def describe(self) -> str:
        return (f"matrix: {self.matrix} ({self.matrix_from}); "
                f"recipes: {self.recipes} ({self.recipes_from})")

    def load_matrix(self) -> Matrix:
        try:
            return load_matrix(self.matrix)
        except ConfigError as e:
            if self.matrix_from != FROM_CWD:
                raise
            raise ConfigError(e.message, hint=f"{e.hint}. This matrix.yaml was taken from the "
                              "current directory: --matrix FILE names another") from None


def _cwd() -> Path | None:
    try:
        return Path.cwd()
    except OSError:  # removed under us: no ./matrix.yaml then
        return None


def _is(path: Path, test: Callable[[Path], bool]) -> bool:
    try:
        return test(path)
    except OSError:  # e.g. a directory we may not search
        return False


def find_config(matrix: Path | None = None, recipes: Path | None = None,
                cwd: Path | None = None) -> ConfigFiles:
    """The files to use: ``--matrix``/``--recipes`` when given; else ./matrix.yaml and the
    recipes/ beside it; else musl-pbs's default (the repository's, shipped in the package)."""
    here = cwd.absolute() if cwd else _cwd()
    if matrix is not None:
        matrix_path, matrix_from = matrix, FROM_FLAG.format(flag="--matrix")
    elif here and _is(here / "matrix.yaml", Path.is_file):
        matrix_path, matrix_from = here / "matrix.yaml", FROM_CWD
    else:
        matrix_path, matrix_from = DEFAULT_MATRIX, FROM_DEFAULT
    beside = matrix_path.parent / "recipes"
    if recipes is not None:
        recipes_path, recipes_from = recipes, FROM_FLAG.format(flag="--recipes")
    elif matrix_from != FROM_DEFAULT and _is(beside, Path.is_dir):
        recipes_path, recipes_from = beside, FROM_BESIDE
    else:
        recipes_path, recipes_from = DEFAULT_RECIPES, FROM_DEFAULT
    return ConfigFiles(matrix_path, matrix_from, recipes_path, recipes_from)


def help_text(what: str, order: str, path: Path, origin: str) -> str:
    """An argparse help naming the file in use now (``%`` escaped for argparse)."""
    return f"{what}. Default: {order}. Now: {path} ({origin})".replace("%", "%%")


@dataclass(frozen=True)
class Recipe:
    python: str  # "3.11"
    packages: tuple[str, ...]
    optional_packages: tuple[str, ...]
    prune: tuple[str, ...]
    required_extensions: tuple[str, ...]
    expected_extensions: tuple[str, ...]
    source: Path
    default: bool = False  # made by default_recipe(): no recipe file for this minor

    @property
    def name(self) -> str:
        """What the manifest records: the recipe file's name, or ``default``."""
        return "default" if self.default else self.source.name

    def install_command(self, packages: tuple[str, ...] | None = None) -> list[str]:
        return ["apk", "add", "--no-cache", *(packages or self.packages)]


@dataclass(frozen=True)
class Release:
    tag: str
    python: str
    musl: str
    arches: tuple[str, ...]
    eol: dt.date | None = None  # Alpine's end of life for the branch; None: none known (edge)

    def ended(self, today: dt.date) -> bool:
        """Past its end of life on ``today`` (the day after ``eol`` on)."""
        return self.eol is not None and self.eol < today

    def describe_eol(self) -> str:
        return (f"Alpine {self.tag} reached its end of life on {self.eol.isoformat()}"
                if self.eol else f"Alpine {self.tag} has no end of life")


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

    def image_for(self, tag: str, arch: str) -> str:
        """The build image of a target: the template with {tag} and {arch} filled in."""
        return self.image_template.replace("{tag}", tag).replace("{arch}", arch)


class _Doc:
    """A YAML document with the line of every key, for errors that say file:line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text = read_capped_text(path, cap=CAP_CONFIG, what="a YAML configuration file",
                                error=ConfigError)
        self.data, node = parse_yaml(text, str(path), ConfigError)
        self.lines: dict[tuple[str, ...], int] = {}
        if node is not None:
            self._index(node, ())
        if not isinstance(self.data, dict):
            raise ConfigError(f"{path}:1: expected a mapping at the top level")

    def _index(self, node: yaml.Node, at: tuple[str, ...]) -> None:
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = (*at, str(key.value))
                self.lines[k] = key.start_mark.line + 1
                self._index(value, k)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._index(item, (*at, str(i)))

    def error(self, at: tuple[str, ...], message: str, hint: str = "") -> ConfigError:
        key = at
        while key and key not in self.lines:
            key = key[:-1]
        line = self.lines.get(key, 1)
        where = ".".join(at) or "top level"
        return ConfigError(f"{self.path}:{line}: {where}: {message}", hint=hint or None)

    def str_list(self, data: dict[str, Any], at: tuple[str, ...], key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error((*at, key), "must be a list of strings")
        return tuple(value)


# Extension modules every CPython 3.x has (as shared modules or built in): what a default
# recipe requires. Those Alpine's python3 normally also has are only expected.
CORE_EXTENSIONS = ("zlib", "_ctypes", "_struct", "math", "_json", "_datetime", "select",
                   "_socket")
ALPINE_EXTENSIONS = ("_bz2", "_lzma", "_sqlite3", "_decimal", "_ssl", "_hashlib", "pyexpat",
                     "readline", "_curses")


# python3-extra's subpackages (the gdbm, uuid, tkinter and, from 3.14, zstd modules): optional
# packages, installed where a release offers them.
EXTRA_SUBPACKAGES = ("python3-gdbm", "python3-uuid", "python3-tkinter", "python3-zstd")


def default_prune(minor: str) -> tuple[str, ...]:
    """The test suites, IDLE, turtledemo, test modules and PEP 668's marker. (tkinter
    stays: it is there only when the release's python3-tkinter was installed.)"""
    lib = f"lib/python{minor}"
    return (f"{lib}/test", f"{lib}/*/test", f"{lib}/*/tests", f"{lib}/idlelib",
            f"{lib}/turtledemo", f"{lib}/lib-dynload/_test*",
            f"{lib}/lib-dynload/_ctypes_test*", f"{lib}/lib-dynload/_xxtestfuzz*",
            f"{lib}/lib-dynload/xxlimited*", f"{lib}/lib-dynload/xxsubtype*",
            f"{lib}/EXTERNALLY-MANAGED")


def default_recipe(minor: str, recipes_dir: Path = DEFAULT_RECIPES) -> Recipe:
    """A recipe for a minor that has no file: derived from the minor alone."""
    if not _MINOR.match(minor):
        raise ConfigError(f"no recipe can be made for Python {minor!r}")
    return Recipe(python=minor, packages=("python3",),
                  optional_packages=("python3-dev", *EXTRA_SUBPACKAGES),
                  prune=default_prune(minor), required_extensions=CORE_EXTENSIONS,
                  expected_extensions=ALPINE_EXTENSIONS,
                  source=recipes_dir / f"python{minor}.yaml", default=True)


def find_recipe(minor: str, recipes_dir: Path = DEFAULT_RECIPES) -> Recipe:
    """The recipe file for ``minor`` when there is one, else :func:`default_recipe`."""
    if (recipes_dir / f"python{minor}.yaml").exists():
        return load_recipe(minor, recipes_dir)
    return default_recipe(minor, recipes_dir)


def load_recipe(minor: str, recipes_dir: Path = DEFAULT_RECIPES) -> Recipe:
    path = recipes_dir / f"python{minor}.yaml"
    if not path.exists():
        have = sorted(p.stem.removeprefix("python") for p in recipes_dir.glob("python*.yaml"))
        raise ConfigError(
            f"no recipe for Python {minor} in {recipes_dir}",
            hint=f"add {path.name} (recipes exist for: {', '.join(have) or 'none'})",
        )
    doc = _Doc(path)
    data = doc.data
    known = {"python", "packages", "optional_packages", "prune", "required_extensions",
             "expected_extensions"}
    for key in sorted(set(data) - known, key=str):
        raise doc.error((str(key),), "unknown key", hint=f"known keys: {', '.join(sorted(known))}")
    if str(data.get("python")) != minor:
        raise doc.error(("python",), f"must be {minor!r} (the file name says so)")
    packages = doc.str_list(data, (), "packages")
    if not packages:
        raise doc.error(("packages",), "must name at least one package")
    return Recipe(
        python=minor,
        packages=packages,
        optional_packages=doc.str_list(data, (), "optional_packages"),
        prune=doc.str_list(data, (), "prune"),
        required_extensions=doc.str_list(data, (), "required_extensions"),
        expected_extensions=doc.str_list(data, (), "expected_extensions"),
        source=path,
    )


_MATRIX_KEYS = {"image", "default_release", "releases"}
_RELEASE_KEYS = {"python", "musl", "arches", "eol"}


def _parse_eol(doc: _Doc, body: dict[str, Any], at: tuple[str, ...]) -> dt.date | None:
    """``eol``: an ISO date (quoted or not: YAML reads an unquoted one as a date)."""
    raw = body.get("eol")
    if raw is None:
        return None
    if isinstance(raw, dt.datetime):
        raise doc.error((*at, "eol"), "must be a date like '2027-05-01', not a time")
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            pass
    raise doc.error((*at, "eol"), f"{raw!r} is not a date like '2027-05-01' "
                    "(Alpine's eol_date for the branch)")


def load_matrix(path: Path = DEFAULT_MATRIX) -> Matrix:
    """Load and validate matrix.yaml; every error names file:line and the key."""
    doc = _Doc(path)
    data = doc.data
    for key in sorted(set(data) - _MATRIX_KEYS, key=str):
        raise doc.error((str(key),), "unknown key",
                        hint=f"known keys: {', '.join(sorted(_MATRIX_KEYS))}")
    releases_raw = data.get("releases")
    if not isinstance(releases_raw, dict) or not releases_raw:
        raise doc.error(("releases",), "must be a non-empty mapping of tag -> release")
    releases = []
    for raw_tag, body in releases_raw.items():
        tag = str(raw_tag)
        at = ("releases", tag)
        if isinstance(raw_tag, float) or not re.fullmatch(r"\d+\.\d+|edge", tag):
            raise doc.error(at, f"release tag {tag!r} is not like '3.19' (quote it) or 'edge'")
        if not isinstance(body, dict):
            raise doc.error(at, "expected a mapping with python, musl, arches, eol")
        for key in sorted(set(body) - _RELEASE_KEYS, key=str):
            raise doc.error((*at, str(key)), "unknown key",
                            hint=f"known keys: {', '.join(sorted(_RELEASE_KEYS))}")
        python = str(body.get("python", ""))
        if not _MINOR.match(python) or isinstance(body.get("python"), float):
            raise doc.error((*at, "python"), "must be a quoted minor version like '3.12'")
        musl = str(body.get("musl", ""))
        if not re.fullmatch(r"\d+\.\d+\.\d+", musl):
            raise doc.error((*at, "musl"), "must be a musl version like '1.2.5'")
        arches = doc.str_list(body, at, "arches")
        if not arches:
            raise doc.error((*at, "arches"), "must list at least one architecture")
        for i, a in enumerate(arches):
            try:
                get_arch(a)
            except UnknownArchError as e:
                raise doc.error((*at, "arches", str(i)), e.message, hint=e.hint) from None
            if get_arch(a).alpine != a:
                raise doc.error((*at, "arches", str(i)),
                                f"write Alpine's name {get_arch(a).alpine!r}, not {a!r}")
        releases.append(Release(tag, python, musl, arches, _parse_eol(doc, body, at)))
    template = data.get("image", "alpine:{tag}")
    if not isinstance(template, str) or "{tag}" not in template:
        raise doc.error(("image",), "must be a string containing {tag} (and maybe {arch})")
    default = str(data.get("default_release", releases[-1].tag))
    if default not in {r.tag for r in releases}:
        raise doc.error(("default_release",), f"{default!r} is not one of the releases")
    return Matrix(template, default, tuple(releases), path)

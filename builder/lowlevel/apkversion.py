"""Alpine package versions, ordered the way apk-tools orders them.

Grammar (apk-tools src/version.c): ``digit{.digit}...{letter}{_suffix{number}}...{~hash}{-rN}``.
Suffixes ``_alpha < _beta < _pre < _rc`` sort before the plain release, ``_cvs < _svn < _git <
_hg < _p`` after it; ``-rN`` is Alpine's package revision. A number with a leading zero
(after the first) compares as text, as apk does. This is the ONE comparison of Alpine and
musl versions in musl-pbs: install, verify, detect and the manifest all go through it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# Token kinds, in apk's order: the order itself decides who is "shorter" at the end.
_INITIAL, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _HASH, _REVISION, _END, _INVALID = range(9)
_NONE = 5  # the plain release sits between the pre- and the post-release suffixes
SUFFIXES = {"alpha": 1, "beta": 2, "pre": 3, "rc": 4, "cvs": 6, "svn": 7, "git": 8, "hg": 9,
            "p": 10}
_MAX_LEN = 256
_DIGITS = re.compile(r"[0-9]+")
_WORD = re.compile(r"[a-z]*")
_HEX = re.compile(r"[0-9a-fA-F]+")
_REV = re.compile(r"-r([0-9]+)")


@dataclass(frozen=True)
class _Token:
    kind: int
    text: str = ""
    number: int = 0
    suffix: int = 0


def _tokens(version: str) -> list[_Token]:
    """apk's tokens of ``version``; the last is ``_END`` or ``_INVALID``."""
    out: list[_Token] = []
    m = _DIGITS.match(version)
    if m is None or len(version) > _MAX_LEN:
        return [_Token(_INVALID)]
    out.append(_Token(_INITIAL, m.group(0), int(m.group(0))))
    pos = m.end()
    kind = _INITIAL
    while True:
        if pos >= len(version):
            out.append(_Token(_END))
            return out
        c = version[pos]
        tok: _Token | None = None
        if "a" <= c <= "z" and kind <= _DIGIT:
            tok, pos = _Token(_LETTER, c, ord(c)), pos + 1
        elif (c == "." and kind <= _DIGIT) or (c.isdigit() and kind in (_INITIAL, _DIGIT,
                                                                         _SUFFIX)):
            start = pos + (c == ".")
            m = _DIGITS.match(version, start)
            if m is not None:
                new_kind = _SUFFIX_NO if kind == _SUFFIX else _DIGIT
                tok, pos = _Token(new_kind, m.group(0), int(m.group(0))), m.end()
        elif c == "_" and kind <= _SUFFIX_NO:
            m = _WORD.match(version, pos + 1)
            assert m is not None
            if m.group(0) in SUFFIXES:
                tok, pos = _Token(_SUFFIX, m.group(0), suffix=SUFFIXES[m.group(0)]), m.end()
        elif c == "~" and kind < _HASH:
            m = _HEX.match(version, pos + 1)
            if m is not None:
                tok, pos = _Token(_HASH, m.group(0)), m.end()
        elif c == "-" and kind < _REVISION:
            m = _REV.match(version, pos)
            if m is not None:
                tok, pos = _Token(_REVISION, m.group(1), int(m.group(1))), m.end()
        if tok is None:
            out.append(_Token(_INVALID))
            return out
        out.append(tok)
        kind = tok.kind


def is_valid(version: str) -> bool:
    """True when apk would accept ``version`` (``apk version --check``)."""
    return _tokens(version)[-1].kind == _END


def _cmp(x: int | str, y: int | str) -> int:
    return (x > y) - (x < y)  # type: ignore[operator]


def _token_cmp(a: _Token, b: _Token) -> int:
    if a.kind == _DIGIT and (a.text.startswith("0") or b.text.startswith("0")):
        return _cmp(a.text, b.text)  # leading zero: text order, as apk does
    if a.kind in (_INITIAL, _DIGIT, _SUFFIX_NO, _REVISION, _LETTER):
        return _cmp(a.number, b.number)
    if a.kind == _SUFFIX:
        return _cmp(a.suffix, b.suffix)
    return _cmp(a.text, b.text)  # commit hashes


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as, or newer than ``b`` (apk's order)."""
    ta, tb = _tokens(a), _tokens(b)
    i = 0
    while ta[i].kind == tb[i].kind and ta[i].kind < _END:
        r = _token_cmp(ta[i], tb[i])
        if r:
            return r
        i += 1
    x, y = ta[i], tb[i]
    if x.kind == y.kind:
        return 0
    # Equal so far: the longer version is newer, unless it goes on with a pre-release.
    if x.kind == _SUFFIX and x.suffix < _NONE:
        return -1
    if y.kind == _SUFFIX and y.suffix < _NONE:
        return 1
    return -1 if x.kind > y.kind else 1


@functools.total_ordering
@dataclass(frozen=True)
class ApkVersion:
    """A version string that sorts as apk sorts it (``sorted(map(ApkVersion, ...))``)."""

    text: str

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, ApkVersion):
            return NotImplemented
        return compare(self.text, other.text) < 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApkVersion):
            return NotImplemented
        return compare(self.text, other.text) == 0

    def __hash__(self) -> int:
        # Versions that compare equal have the same token kinds (and nothing finer is safe).
        return hash(tuple(t.kind for t in _tokens(self.text)))

    def __str__(self) -> str:
        return self.text


def upstream_version(apk_version: str) -> str:
    """The version without Alpine's package revision: ``1.2.4_git20230717-r4`` ->
    ``1.2.4_git20230717``; ``3.11.9-r1`` -> ``3.11.9``. Suffixes stay: they matter."""
    m = re.fullmatch(r"(.*)-r[0-9]+", apk_version)
    return m.group(1) if m else apk_version


def at_least(have: str, need: str) -> bool:
    """Does version ``have`` satisfy a floor of ``need`` (``have >= need`` in apk's order)?"""
    return compare(have, need) >= 0

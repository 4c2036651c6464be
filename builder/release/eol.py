"""End of life: which Alpine releases of matrix.yaml have ended, as of a given day.

matrix.yaml holds the supported releases with their ``eol`` (Alpine's ``eol_date``); ended
ones are dropped from it. A release that has ended, or that the matrix no longer holds,
gets no security fixes (OpenSSL, sqlite, expat...): ``musl-pbs build`` warns about it and
``release assemble`` / ``alpine check`` refuse to publish it without ``--allow-eol``.
"The day" is always a parameter, never read here: tests pass theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from builder.config import Matrix
from builder.errors import EndOfLifeError


def eol_problem(matrix: Matrix, tag: str, today: date) -> str | None:
    """Why release ``tag`` should not be published on ``today``, or None when it may."""
    release = matrix.release(tag)
    if release is None:
        return (f"Alpine {tag} is not a release of {matrix.source.name} (ended releases are "
                "dropped from it)")
    if release.ended(today):
        return f"{release.describe_eol()} (gets no security fixes)"
    return None


def eol_problems(matrix: Matrix, tags: Iterable[str], today: date) -> list[str]:
    """:func:`eol_problem` of every distinct tag, in order."""
    out: list[str] = []
    for tag in dict.fromkeys(tags):
        problem = eol_problem(matrix, tag, today)
        if problem is not None:
            out.append(problem)
    return out


def refuse_ended(matrix: Matrix, tags: Iterable[str], today: date, *, allow: bool,
                 what: str) -> list[str]:
    """Raise :class:`EndOfLifeError` naming the ended releases among ``tags``, unless
    ``allow``; return the problems (for a warning) either way."""
    problems = eol_problems(matrix, tags, today)
    if problems and not allow:
        raise EndOfLifeError(f"{what}: refused, as of {today.isoformat()}: "
                             + "; ".join(problems))
    return problems

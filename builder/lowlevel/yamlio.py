"""YAML as musl-pbs reads it: safe tags only, and no aliases.

An alias (``*name``) lets a few hundred bytes expand into gigabytes ("billion laughs"):
``yaml.safe_load`` builds every copy. None of our YAML inputs (matrix.yaml, recipes,
Alpine's latest-releases.yaml) needs one, so the first alias is refused with its line,
before anything is built. Without aliases, the work is linear in the size of the text.
"""

from __future__ import annotations

from typing import Any

import yaml

from builder.errors import MuslPbsError


class _AliasRefused(yaml.MarkedYAMLError):
    pass


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _AliasRefused(
                problem=f"YAML alias *{event.anchor} refused (aliases can expand "
                "exponentially; write the value out)",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)


def parse_yaml(text: str, source: str, error: type[MuslPbsError]) -> tuple[Any, yaml.Node | None]:
    """``text`` -> (data, node); the node keeps every line for errors that say file:line.

    Invalid YAML, an alias, or nesting too deep to compose: ``error("source:LINE: ...")``.
    """
    loader = _NoAliasLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error(f"{source}{line}: not valid YAML: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise error(f"{source}: not valid YAML: {e}") from None
    except RecursionError:
        raise error(f"{source}: YAML nested too deeply") from None
    finally:
        loader.dispose()
    return data, node

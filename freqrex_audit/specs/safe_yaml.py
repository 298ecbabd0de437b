"""Reading a spec's YAML safely, and the error every spec problem becomes.

A spec arrives in a pull request, so its text is hostile until proven otherwise: it is read with a
SafeLoader that also refuses duplicate keys, at most :data:`MAX_SPEC_BYTES` bytes, and no document whose
aliases expand to more than :data:`MAX_SPEC_VALUES` values (``billion laughs``) or nest without end.
:func:`key_line` finds the line a key path sits on, so an error can point at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..runtime.paths import shown_spec

__all__ = ["SpecError", "yaml_load", "read_spec_document", "key_line", "MAX_SPEC_BYTES", "MAX_SPEC_VALUES"]

MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_VALUES = 100_000


class SpecError(ValueError):
    """A spec that cannot be used; ``file`` and ``key`` say where, ``problem`` what, ``line`` (1-based,
    or None) the spec line. ``also`` holds the further problems found in the same pass, each a SpecError."""

    def __init__(self, file: str | Path, key: str, problem: str, line: int | None = None,
                 also: list["SpecError"] | None = None):
        self.file = str(file)
        self.key = key
        self.problem = problem
        self.line = line
        self.also = list(also or [])
        super().__init__("\n".join([self._one_line()] + [other._one_line() for other in self.also]))

    def _one_line(self) -> str:
        where = f"{self.file}: {self.key}: " if self.key else f"{self.file}: "
        return where + self.problem + (f" (line {self.line})" if self.line else "")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (YAML would silently keep the later one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {str(key)[:60]!r} is given twice (line {seen[key] + 1} and line "
                                f"{key_node.start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map", _UniqueKeyLoader.construct_yaml_map)


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (every spec and model descriptor is read with it)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass



def read_spec_document(path: Path) -> tuple[Any, str]:
    """The parsed document and its text, or a :class:`SpecError` (file-level: no key) saying why not."""
    file = shown_spec(path)
    if not path.is_file():
        raise SpecError(file, "", "spec file not found")
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(file, "", f"is {size} bytes; a spec is at most {MAX_SPEC_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8-sig")
        raw = yaml_load(text)
        _check_size(raw, file)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SpecError(file, "", f"is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(file, "", "is not UTF-8 text") from None
    except RecursionError:
        raise SpecError(file, "", "nests too deeply to be a spec") from None
    except SpecError:
        raise
    except ValueError as exc:  # e.g. an integer of thousands of digits (Python's int-from-text limit)
        raise SpecError(file, "", f"is not a valid spec: {str(exc)[:120]}") from None
    return raw, text


def _check_size(raw: Any, file: str) -> None:
    """Refuse documents whose YAML aliases expand to huge (``billion laughs``) or endless (self-referencing) data.

    The walk counts every value as if aliases were copied, and stops at the first value over the limit.
    """
    left = MAX_SPEC_VALUES
    stack = [raw]
    while stack:
        value = stack.pop()
        left -= 1
        if left < 0:
            raise SpecError(file, "", f"expands to more than {MAX_SPEC_VALUES} values (nested YAML aliases?); "
                                      "a spec is a small document")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def key_line(text: str, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line of the deepest node of ``path`` (mapping keys and list indexes) found in the YAML
    ``text``; None when the text does not compose. Follows only ``path``, so aliases cost nothing."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    line = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line

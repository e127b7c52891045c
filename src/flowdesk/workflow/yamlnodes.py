"""YAML as position-carrying nodes.

PyYAML's composer keeps a start mark on every node; we validate the node tree directly instead of
constructed Python objects so that every message can point at the exact key or value.
"""

from __future__ import annotations

import re

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .diagnostics import CatalogError, Diagnostic, Pos, Sink

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_constructor = SafeConstructor()


def pos_of(node: Node) -> Pos:
    mark = node.start_mark
    return Pos(str(mark.name), mark.line + 1, mark.column + 1)


def load_text(text: str, filename: str) -> Node | None:
    """Compose a document; a syntax error becomes a CatalogError at the offending mark."""
    loader = yaml.SafeLoader(text)
    loader.name = filename  # marks carry the file name, so diagnostics survive merging
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        raise CatalogError([Diagnostic(filename, line, col, f"invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise CatalogError([Diagnostic(filename, 1, 1, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def normalize_key(key: str) -> str:
    """``displayName`` and ``display_name`` are the same key: seed 000 uses camelCase."""
    return _CAMEL.sub(r"_\1", key).lower()


def scalar(node: Node) -> object:
    return _constructor.construct_object(node, deep=True) if isinstance(node, ScalarNode) else None


def mapping(
    node: Node, sink: Sink, what: str, *, normalize: bool = True
) -> dict[str, tuple[Node, Node]] | None:
    """A mapping of string keys -> (key node, value node); duplicate keys are errors.

    Schema keys are normalised (camelCase = snake_case); data keys (status names) are not.
    """
    if not isinstance(node, MappingNode):
        sink.error(pos_of(node), f"{what} must be a mapping")
        return None
    out: dict[str, tuple[Node, Node]] = {}
    for key_node, value_node in node.value:
        key = scalar(key_node)
        if not isinstance(key, str):
            sink.error(pos_of(key_node), f"{what}: keys must be strings")
            continue
        norm = normalize_key(key) if normalize else key
        if norm in out:
            first = pos_of(out[norm][0])
            sink.error(
                pos_of(key_node), f"{what}: duplicate key '{key}' (first at line {first.line})"
            )
            continue
        out[norm] = (key_node, value_node)
    return out


def check_keys(
    fields: dict[str, tuple[Node, Node]], allowed: frozenset[str], sink: Sink, what: str
) -> None:
    for key, (key_node, _) in fields.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            sink.error(pos_of(key_node), f"{what}: unknown key '{key}' (expected one of: {known})")


def string(node: Node, sink: Sink, what: str, *, allow_empty: bool = False) -> str | None:
    value = scalar(node)
    if isinstance(value, str) and (allow_empty or value):
        return value
    if allow_empty and value is None and isinstance(node, ScalarNode):
        return ""
    sink.error(pos_of(node), f"{what} must be a non-empty string")
    return None


def string_list(node: Node, sink: Sink, what: str) -> list[tuple[str, Node]]:
    """A string or a list of strings: most list-valued keys accept a single value too."""
    items = node.value if isinstance(node, SequenceNode) else [node]
    out: list[tuple[str, Node]] = []
    for item in items:
        if isinstance(item, ScalarNode):
            value = scalar(item)
            if isinstance(value, str | int) and not isinstance(value, bool):
                out.append((str(value), item))
                continue
        sink.error(pos_of(item), f"{what} must be a string or a list of strings")
    return out


def boolean(node: Node, sink: Sink, what: str) -> bool:
    value = scalar(node)
    if isinstance(value, bool):
        return value
    sink.error(pos_of(node), f"{what} must be true or false")
    return False


def integer(node: Node, sink: Sink, what: str) -> int:
    value = scalar(node)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    sink.error(pos_of(node), f"{what} must be an integer")
    return 0


def sequence(node: Node, sink: Sink, what: str) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    sink.error(pos_of(node), f"{what} must be a list")
    return []

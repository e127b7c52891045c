"""What the importers share: their error type and the YAML they write."""

from __future__ import annotations

import re
from typing import Any

import yaml


class ImportProblem(Exception):
    """The source cannot be imported faithfully; the message names the file and line or key."""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # anchors/aliases make a catalog harder to read and to diff


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str)


def dump_catalog(doc: dict[str, Any], header: list[str]) -> str:
    """Block style for records, flow style for lists of names: reads like the shipped file."""
    body = yaml.dump(
        doc, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True
    )
    return "".join(f"# {line}\n" if line else "#\n" for line in header) + body

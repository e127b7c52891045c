from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowdesk.workflow import Actor, Catalog, compile_catalog, load_catalog

REPO = Path(__file__).resolve().parents[2]
# Trac's sample workflows, vendored as test inputs (see data/trac/README.md).
TRAC_DIR = Path(__file__).parent / "data" / "trac"

REQUESTER = Actor("rita", frozenset({"tickets:create"}))
ASSIGNEE = Actor("alex", frozenset({"tickets:create", "tickets:manage", "tickets:close"}))
AGENT = Actor("olga", frozenset({"tickets:create", "tickets:manage", "tickets:close"}))
ADMIN = Actor("ada", frozenset({"admin"}))


@pytest.fixture(scope="session")
def shipped() -> Catalog:
    return load_catalog([], base=REPO / "workflows.yaml")


def compile_yaml(text: str, filename: str = "test.yaml") -> Catalog:
    return compile_catalog([(filename, textwrap.dedent(text))])

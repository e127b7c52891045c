"""Importers: other systems' workflow definitions -> flowdesk catalog YAML."""

from .common import ImportProblem, dump_catalog
from .rt import import_rt
from .trac import import_trac

__all__ = ["ImportProblem", "dump_catalog", "import_rt", "import_trac"]

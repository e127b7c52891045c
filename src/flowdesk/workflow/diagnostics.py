"""Diagnostics: every load-time problem carries the file, line and column it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Pos:
    """A place in a source file; line and column are 1-based, as editors show them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


UNKNOWN_POS = Pos("<unknown>", 0, 0)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int
    column: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


class CatalogError(Exception):
    """The catalog cannot be loaded; ``diagnostics`` holds every error found, not just the first."""

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


@dataclass(slots=True)
class Sink:
    """Collects diagnostics so that one run reports every problem at once."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, pos: Pos, message: str) -> None:
        self.items.append(Diagnostic(pos.file, pos.line, pos.column, message, "error"))

    def warn(self, pos: Pos, message: str) -> None:
        self.items.append(Diagnostic(pos.file, pos.line, pos.column, message, "warning"))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self) -> None:
        errors = self.errors
        if errors:
            raise CatalogError(sorted(errors, key=lambda d: (d.file, d.line, d.column)))

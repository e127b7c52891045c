"""Run Alembic programmatically against a URL (used by `flowdesk migrate`, `serve` and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import flowdesk


def migrations_dir() -> Path:
    """The repository's migrations/ (a source checkout or editable install), else the one in
    the working directory (the Docker image copies it next to where the service runs)."""
    candidates = [
        Path(flowdesk.__file__).resolve().parents[2] / "migrations",
        Path.cwd() / "migrations",
    ]
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        "cannot find the migrations directory (looked in: "
        + ", ".join(str(c) for c in candidates)
        + ")"
    )


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolation: a literal % in a URL must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)

"""API keys bound to a channel: first-party (/v1) or public (/public/v1)

Issue 16, item 5: a key is issued for one channel and refused on the other, so the public
API's flag and rate limits cannot be sidestepped through /v1 (docs/adr/
0020-key-channels-and-tenant-budget.md). `api_keys.channel` is `first_party` or `public`,
default `first_party` (sign-in keys and the keys every tool made so far).

Existing keys: a key whose metered traffic (api_usage) was all on the public API is a
public key; any other key (used on /v1, on both, or never) stays first-party. A key that
served both channels keeps working on /v1 only: its public integration needs a public key
(`GET /v1/usage` shows which keys those are).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column(
            "channel", sa.String(16), nullable=False, server_default=sa.text("'first_party'")
        ),
    )
    op.create_check_constraint(
        "ck_api_keys_channel", "api_keys", "channel IN ('first_party', 'public')"
    )
    # Keys seen only on the public API become public keys (the families are "public.<x>").
    op.execute(
        """
        UPDATE api_keys AS k SET channel = 'public'
        WHERE EXISTS (
            SELECT 1 FROM api_usage AS u
            WHERE u.tenant_id = k.tenant_id AND u.api_key_id = k.id
              AND u.family LIKE 'public.%'
        )
        AND NOT EXISTS (
            SELECT 1 FROM api_usage AS u
            WHERE u.tenant_id = k.tenant_id AND u.api_key_id = k.id
              AND u.family NOT LIKE 'public.%'
        )
        """
    )


def downgrade() -> None:
    op.drop_constraint("ck_api_keys_channel", "api_keys", type_="check")
    op.drop_column("api_keys", "channel")

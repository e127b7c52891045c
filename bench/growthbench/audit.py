"""What each ticket change leaves behind: the bytes the audit trail (`ticket_events`, kept for
good) and the outbox (purged once delivered) grow by per change, read from the relations'
sizes and their identity sequences before and after a load."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import asyncpg

TABLES = ("ticket_events", "outbox", "tickets")


@dataclass(frozen=True)
class Snapshot:
    rows_made: dict[str, int]  # identity sequence values (rows ever inserted), where one exists
    heap_bytes: dict[str, int]
    index_bytes: dict[str, int]


@dataclass(frozen=True)
class Growth:
    changes: int  # events written between the snapshots: one per ticket change
    per_change: dict[str, dict[str, float]]  # table -> {"heap": bytes, "indexes": bytes}
    outbox_rows_per_change: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def snapshot(url: str) -> Snapshot:
    conn = await asyncpg.connect(url)
    try:
        # A relation's size is its files' length: current as soon as a page is added.
        rows: dict[str, int] = {}
        heap: dict[str, int] = {}
        indexes: dict[str, int] = {}
        for table in TABLES:
            sequence = await conn.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)
            if sequence is not None:
                rows[table] = int(await conn.fetchval(f"SELECT last_value FROM {sequence}"))
            heap[table] = int(await conn.fetchval("SELECT pg_table_size($1::regclass)", table))
            indexes[table] = int(await conn.fetchval("SELECT pg_indexes_size($1::regclass)", table))
        return Snapshot(rows, heap, indexes)
    finally:
        await conn.close()


def growth(before: Snapshot, after: Snapshot) -> Growth:
    changes = after.rows_made["ticket_events"] - before.rows_made["ticket_events"]
    per: dict[str, dict[str, float]] = {}
    for table in TABLES:
        per[table] = {
            "heap": (after.heap_bytes[table] - before.heap_bytes[table]) / max(changes, 1),
            "indexes": (after.index_bytes[table] - before.index_bytes[table]) / max(changes, 1),
        }
    outbox = after.rows_made["outbox"] - before.rows_made["outbox"]
    return Growth(changes, per, outbox / max(changes, 1))

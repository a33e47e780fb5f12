"""Money guards the ORM cannot declare: ``balance >= 0`` and append-only ledger entries.

PostgreSQL gets a CHECK constraint and a trigger function; SQLite gets triggers (it cannot add a
CHECK to an existing table).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-23T23:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "balance >= 0 and append-only ledger entries"

POSTGRES = [
    "ALTER TABLE accounts ADD CONSTRAINT accounts_balance_nonnegative CHECK (balance >= 0)",
    """CREATE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'ledger entries are append-only'; END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
       FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()""",
]

SQLITE = [
    """CREATE TRIGGER accounts_balance_nonnegative_insert BEFORE INSERT ON accounts
       WHEN NEW.balance < 0 BEGIN SELECT RAISE(ABORT, 'balance must be >= 0'); END""",
    """CREATE TRIGGER accounts_balance_nonnegative_update BEFORE UPDATE ON accounts
       WHEN NEW.balance < 0 BEGIN SELECT RAISE(ABORT, 'balance must be >= 0'); END""",
    """CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    """CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="video_gen", description=DESCRIPTION)

    async def run():
        engine = engine_finder()
        for sql in POSTGRES if engine.engine_type == "postgres" else SQLITE:
            await engine.run_ddl(sql)

    manager.add_raw(run)
    return manager

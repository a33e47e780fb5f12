"""The ``cancelled`` generation state.

The status check admits ``cancelled``, and a cancelled generation that was charged must be
refunded before it is marked so, as a failed one must (PostgreSQL: the money trigger's function is
replaced with one that says so; SQLite: two more guard triggers).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-28T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "generation state: cancelled"

STATES = "('running', 'succeeded', 'failed', 'cancelled')"

POSTGRES = [
    "ALTER TABLE generations DROP CONSTRAINT generations_status",
    f"ALTER TABLE generations ADD CONSTRAINT generations_status CHECK (status IN {STATES})",
    """CREATE OR REPLACE FUNCTION generations_check_money() RETURNS trigger AS $$
    BEGIN
      IF TG_OP = 'UPDATE' AND (NEW.id IS DISTINCT FROM OLD.id OR NEW.user_id IS DISTINCT FROM OLD.user_id
          OR NEW.credits_charged IS DISTINCT FROM OLD.credits_charged) THEN
        RAISE EXCEPTION 'ledger: a generation''s id, owner and charge never change';
      END IF;
      IF NEW.credits_refunded IS DISTINCT FROM COALESCE((SELECT amount FROM ledger_entries
          WHERE unique_key = 'refund:' || NEW.id), 0) THEN
        RAISE EXCEPTION 'ledger: credits_refunded must mirror the refund entry of generation %', NEW.id;
      END IF;
      IF NEW.status IN ('failed', 'cancelled') AND NEW.credits_charged > 0 AND NOT EXISTS (SELECT 1
          FROM ledger_entries WHERE unique_key = 'refund:' || NEW.id) THEN
        RAISE EXCEPTION 'ledger: charged generation % must be refunded before it is marked %', NEW.id, NEW.status;
      END IF;
      IF NEW.status = 'succeeded' AND EXISTS (SELECT 1 FROM ledger_entries
          WHERE unique_key = 'refund:' || NEW.id AND actor = 'system') THEN
        RAISE EXCEPTION 'ledger: generation % was refunded as failed and cannot succeed', NEW.id;
      END IF;
      RETURN NEW;
    END; $$ LANGUAGE plpgsql""",
]

_CANCELLED_UNREFUNDED = (
    "NEW.status = 'cancelled' AND NEW.credits_charged > 0 AND NOT EXISTS "
    "(SELECT 1 FROM ledger_entries r WHERE r.unique_key = 'refund:' || NEW.id)"
)
_MESSAGE = "a charged generation must be refunded before it is marked cancelled"

SQLITE = [
    "DROP TRIGGER generations_status_insert",
    "DROP TRIGGER generations_status_update",
    f"""CREATE TRIGGER generations_status_insert BEFORE INSERT ON generations WHEN NEW.status NOT IN {STATES}
    BEGIN SELECT RAISE(ABORT, 'generations: unknown status'); END""",
    f"""CREATE TRIGGER generations_status_update BEFORE UPDATE OF status ON generations WHEN NEW.status NOT IN {STATES}
    BEGIN SELECT RAISE(ABORT, 'generations: unknown status'); END""",
    f"""CREATE TRIGGER generations_cancelled_refunded_insert BEFORE INSERT ON generations
    WHEN {_CANCELLED_UNREFUNDED} BEGIN SELECT RAISE(ABORT, 'ledger: {_MESSAGE}'); END""",
    f"""CREATE TRIGGER generations_cancelled_refunded_update BEFORE UPDATE OF status, credits_refunded ON generations
    WHEN {_CANCELLED_UNREFUNDED} BEGIN SELECT RAISE(ABORT, 'ledger: {_MESSAGE}'); END""",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="video_gen", description=DESCRIPTION)

    async def run():
        engine = engine_finder()
        for sql in POSTGRES if engine.engine_type == "postgres" else SQLITE:
            await engine.run_ddl(sql)

    manager.add_raw(run)
    return manager

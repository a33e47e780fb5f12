"""PostgreSQL: the charge as one function call, one round trip instead of five statements.

``charge_generation`` does what ``settlement.charge`` does in a transaction on SQLite: insert the
RUNNING record (nothing when it exists: the caller resumes it), take ``p_cost`` from the account
only while the balance covers it, and append the debit entry. A statement is atomic, so an
exception leaves nothing written; every trigger of the ledger invariants migration still checks
each row, and the deferred balance check runs when the statement commits. SQLite: nothing here.

Returns the balance after the debit, or NULL when the generation existed. Raises SQLSTATE VGI01
when the balance is short (or the account missing) and VGI02 when the generation has its debit.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-29T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the charge as one function (PostgreSQL)"

POSTGRES = [
    """CREATE FUNCTION charge_generation(
      p_id TEXT, p_user_id TEXT, p_project_id TEXT, p_model TEXT, p_prompt TEXT, p_source_key TEXT,
      p_requested_duration TEXT, p_cost BIGINT, p_attempts INTEGER, p_idempotency_key TEXT,
      p_reason TEXT, p_at TIMESTAMPTZ
    ) RETURNS BIGINT AS $$
    DECLARE after BIGINT;
    BEGIN
      INSERT INTO generations (id, user_id, project_id, model, prompt, source_key, requested_duration, status,
          credits_charged, credits_refunded, attempts, idempotency_key, progress, created_at, started_at)
        VALUES (p_id, p_user_id, p_project_id, p_model, p_prompt, p_source_key, p_requested_duration, 'running',
          p_cost, 0, p_attempts, p_idempotency_key, '{}', p_at, p_at)
        ON CONFLICT (id) DO NOTHING;
      IF NOT FOUND THEN
        RETURN NULL;
      END IF;
      IF p_cost = 0 THEN
        SELECT balance INTO after FROM accounts WHERE user_id = p_user_id;
        RETURN COALESCE(after, 0);
      END IF;
      UPDATE accounts SET balance = balance - p_cost, updated_at = p_at
        WHERE user_id = p_user_id AND balance >= p_cost RETURNING balance INTO after;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'VGI01';
      END IF;
      INSERT INTO ledger_entries (user_id, kind, amount, balance_after, generation_id, actor, reason, unique_key,
          created_at)
        VALUES (p_user_id, 'debit', -p_cost, after, p_id, p_user_id, p_reason, 'debit:' || p_id, p_at)
        ON CONFLICT (unique_key) DO NOTHING;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'already charged' USING ERRCODE = 'VGI02';
      END IF;
      RETURN after;
    END; $$ LANGUAGE plpgsql""",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="video_gen", description=DESCRIPTION)

    async def run():
        engine = engine_finder()
        if engine.engine_type == "postgres":
            for sql in POSTGRES:
                await engine.run_ddl(sql)

    manager.add_raw(run)
    return manager

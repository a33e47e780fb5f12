"""PostgreSQL: many charges in one statement, ``charge_generations``, for the worker's group commit.

It calls ``charge_generation`` (the charge function's migration) once per item, so each item is
charged by exactly the same rules, and returns one row per item: ``item`` (its 1-based position in
the arrays), ``after`` (the balance after its debit, NULL when the generation existed) and
``refused``: NULL when charged or existing, 'VGI01' when the balance was short (then ``after`` is
the balance as it stood, 0 without an account) or 'VGI02' when the generation had its debit.

Each call runs in its own block with an exception handler (a subtransaction), so a refused item
writes nothing and leaves the others alone; any other error fails the whole statement, which
writes nothing (the caller then charges each item alone to find whose it was). Every ledger
trigger checks each row as it does for one call, and the deferred balance check runs at commit.

The items are charged in the order of their user id (then their position): every batch takes
the accounts' row locks in the same order, so two batches never wait on each other in a cycle.
A batch holds one subtransaction id per item: callers keep batches to at most 64 items, the
number PostgreSQL caches per backend before other sessions' snapshots slow down. SQLite: nothing.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-30T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "many charges in one statement (PostgreSQL)"

POSTGRES = [
    """CREATE FUNCTION charge_generations(
      p_ids TEXT[], p_user_ids TEXT[], p_project_ids TEXT[], p_models TEXT[], p_prompts TEXT[],
      p_source_keys TEXT[], p_requested_durations TEXT[], p_costs BIGINT[], p_attempts INTEGER[],
      p_idempotency_keys TEXT[], p_reasons TEXT[], p_ats TIMESTAMPTZ[]
    ) RETURNS TABLE (item INTEGER, after BIGINT, refused TEXT) AS $$
    DECLARE i INTEGER;
    BEGIN
      FOR i IN SELECT s.i FROM generate_subscripts(p_ids, 1) AS s(i) ORDER BY p_user_ids[s.i], s.i LOOP
        item := i;
        refused := NULL;
        BEGIN
          after := charge_generation(p_ids[i], p_user_ids[i], p_project_ids[i], p_models[i], p_prompts[i],
            p_source_keys[i], p_requested_durations[i], p_costs[i], p_attempts[i], p_idempotency_keys[i],
            p_reasons[i], p_ats[i]);
        EXCEPTION
          WHEN SQLSTATE 'VGI01' THEN
            refused := 'VGI01';
            after := COALESCE((SELECT a.balance FROM accounts a WHERE a.user_id = p_user_ids[i]), 0);
          WHEN SQLSTATE 'VGI02' THEN
            refused := 'VGI02';
            after := NULL;
        END;
        RETURN NEXT;
      END LOOP;
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

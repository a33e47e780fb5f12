"""The ledger's triggers look rows up by their keys only; two indexes go; generations leave room for updates.

On a database whose tables were never analyzed (a new deployment, or one whose autovacuum is off,
as on the test machine), PostgreSQL planned the debit check of ``ledger_entries_check_insert``
(``generations WHERE id = … AND user_id = … AND credits_charged = …``) on the ``user_id`` index, so
every charge read every generation of its user: 88 buffers and 1.3 ms a charge for a user with
4,000 generations, growing with each one. Each lookup now names only the primary or unique key and
compares the other columns in PL/pgSQL, so no plan can take another index; the rules are the same.
``generations_check_money`` reads a generation's refund entry once instead of up to three times.

``ledger_entries_user_id`` duplicates the leading column of ``ledger_entries_user_sequence``
(``user_id, id``), which serves every query the other served; each entry written paid for both.

``generations_status`` goes too. Four values in millions of rows make it useless for reading (the
operators' listing filtered by status walks ``created_at`` instead, newest first, where running
jobs are), and harmful for writing: the SUCCEEDED transition of a batch was planned on it, a bitmap
scan of every index entry still saying ``running`` (without a vacuum, one for each generation
ever made) hashed against the batch, so each batch cost more than the one before. Without it, and
with room left on each page (``fillfactor`` 80), a transition changes no indexed column and is a
heap-only update: no new entry in the table's five other indexes.

Plans are the other half. A statement's plan is made once per connection and kept (PL/pgSQL's,
and a prepared statement's after five runs), so a plan made while the tables were small stays when
they are not: the benchmark's batch of SUCCEEDED transitions kept a sequential scan of
``generations`` made in its first second, and each batch read the whole table. The money
functions and the ledger's triggers only ever look rows up by key, so they run with
``enable_seqscan = off`` (a function's own setting, in force while it and the triggers it fires
run): any plan they make, at any table size, uses the key's index. The batch's SUCCEEDED
transition moves into one of them, ``succeed_generations`` (the same statement).

SQLite: both indexes go; its guards were already key lookups.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-01T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger triggers: key lookups only; two indexes dropped; generations fillfactor 80"

POSTGRES = [
    """CREATE OR REPLACE FUNCTION ledger_entries_check_insert() RETURNS trigger AS $$
    DECLARE stored BIGINT; previous BIGINT; owner TEXT; charged BIGINT; state TEXT; debited BIGINT;
    BEGIN
      SELECT balance INTO stored FROM accounts WHERE user_id = NEW.user_id;
      SELECT balance_after INTO previous FROM ledger_entries WHERE user_id = NEW.user_id ORDER BY id DESC LIMIT 1;
      IF stored IS DISTINCT FROM NEW.balance_after OR NEW.balance_after <> COALESCE(previous, 0) + NEW.amount THEN
        RAISE EXCEPTION 'ledger: entry does not follow the stored balance of account %', NEW.user_id;
      END IF;
      IF NEW.kind = 'debit' THEN
        SELECT g.user_id, g.credits_charged INTO owner, charged FROM generations g WHERE g.id = NEW.generation_id;
        IF owner IS DISTINCT FROM NEW.user_id OR charged IS DISTINCT FROM -NEW.amount THEN
          RAISE EXCEPTION 'ledger: a debit needs its generation, charged the same amount';
        END IF;
      END IF;
      IF NEW.kind = 'refund' THEN
        SELECT d.user_id, -d.amount INTO owner, debited FROM ledger_entries d
          WHERE d.unique_key = 'debit:' || NEW.generation_id;
        IF owner IS DISTINCT FROM NEW.user_id OR NOT COALESCE(debited >= NEW.amount, FALSE) THEN
          RAISE EXCEPTION 'ledger: a refund needs a debit of the same generation of at least its amount';
        END IF;
        IF NEW.actor = 'system' THEN
          SELECT g.status INTO state FROM generations g WHERE g.id = NEW.generation_id;
          IF state = 'succeeded' THEN
            RAISE EXCEPTION 'ledger: only an admin refunds a succeeded generation';
          END IF;
        END IF;
      END IF;
      RETURN NEW;
    END; $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION generations_check_money() RETURNS trigger AS $$
    DECLARE refunded BIGINT; refunder TEXT; found_refund BOOLEAN;
    BEGIN
      IF TG_OP = 'UPDATE' AND (NEW.id IS DISTINCT FROM OLD.id OR NEW.user_id IS DISTINCT FROM OLD.user_id
          OR NEW.credits_charged IS DISTINCT FROM OLD.credits_charged) THEN
        RAISE EXCEPTION 'ledger: a generation''s id, owner and charge never change';
      END IF;
      SELECT r.amount, r.actor INTO refunded, refunder FROM ledger_entries r WHERE r.unique_key = 'refund:' || NEW.id;
      found_refund := FOUND;
      IF NEW.credits_refunded IS DISTINCT FROM COALESCE(refunded, 0) THEN
        RAISE EXCEPTION 'ledger: credits_refunded must mirror the refund entry of generation %', NEW.id;
      END IF;
      IF NEW.status IN ('failed', 'cancelled') AND NEW.credits_charged > 0 AND NOT found_refund THEN
        RAISE EXCEPTION 'ledger: charged generation % must be refunded before it is marked %', NEW.id, NEW.status;
      END IF;
      IF NEW.status = 'succeeded' AND found_refund AND refunder = 'system' THEN
        RAISE EXCEPTION 'ledger: generation % was refunded as failed and cannot succeed', NEW.id;
      END IF;
      RETURN NEW;
    END; $$ LANGUAGE plpgsql""",
    "DROP INDEX IF EXISTS ledger_entries_user_id",
    "DROP INDEX IF EXISTS generations_status",
    "ALTER TABLE generations SET (fillfactor = 80)",
    """CREATE FUNCTION succeed_generations(
      p_ids TEXT[], p_output_keys TEXT[], p_durations REAL[], p_generation_ms BIGINT[], p_finished_ats TIMESTAMPTZ[]
    ) RETURNS TABLE (id TEXT, balance BIGINT) AS $$
      UPDATE generations g SET status = 'succeeded', output_key = v.output_key, duration_seconds = v.duration,
        generation_ms = v.ms, finished_at = v.finished_at
      FROM unnest(p_ids, p_output_keys, p_durations, p_generation_ms, p_finished_ats) AS v(id, output_key, duration, ms, finished_at)
      WHERE g.id = v.id AND g.status = 'running'
      RETURNING g.id, (SELECT a.balance FROM accounts a WHERE a.user_id = g.user_id)
    $$ LANGUAGE sql""",
    *(
        f"ALTER FUNCTION {function} SET enable_seqscan = off"
        for function in (
            "succeed_generations(TEXT[], TEXT[], REAL[], BIGINT[], TIMESTAMPTZ[])",
            "charge_generation(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, BIGINT, INTEGER, TEXT, TEXT, TIMESTAMPTZ)",
            "charge_generations(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], BIGINT[], INTEGER[], TEXT[], "
            "TEXT[], TIMESTAMPTZ[])",
            "ledger_entries_check_insert()",
            "generations_check_money()",
            "accounts_check_balance()",
        )
    ),
]

SQLITE = ["DROP INDEX IF EXISTS ledger_entries_user_id", "DROP INDEX IF EXISTS generations_status"]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="video_gen", description=DESCRIPTION)

    async def run():
        engine = engine_finder()
        for sql in POSTGRES if engine.engine_type == "postgres" else SQLITE:
            await engine.run_ddl(sql)

    manager.add_raw(run)
    return manager

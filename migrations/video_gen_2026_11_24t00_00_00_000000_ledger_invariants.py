"""The ledger's invariants, enforced by the database on PostgreSQL and on SQLite.

- an entry's kind agrees with its sign (grant > 0, debit < 0, refund > 0, adjustment != 0);
- debits and refunds name their generation and carry ``unique_key = kind:generation`` (so the
  existing unique constraint means one debit and at most one refund per generation); grants and
  adjustments carry no key;
- every entry follows its account: ``balance_after`` is the stored balance (updated first, in the
  same transaction) and the previous entry's ``balance_after`` plus ``amount``, so by induction
  ``balance_after`` is the running sum of the account's entries;
- a debit needs its generation row, of the same user, charged the same amount; a refund needs
  the generation's debit, of the same user, of at least its amount; the system (a failing job)
  never refunds a succeeded generation, only an admin does;
- a generation's id, owner and charge never change; ``credits_refunded`` mirrors its refund
  entry; it is marked ``failed`` only once refunded (when charged), and never ``succeeded`` after
  a failure refund;
- accounts are never deleted and admin actions are append-only;
- PostgreSQL only: at commit, every account's balance equals its latest entry's
  ``balance_after`` (a deferred constraint trigger). SQLite has no deferred triggers: there the
  ledger code (the only writer of ``balance``) and ``video-gen ledger verify`` guarantee it.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-24T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger invariants: entry chain, refunds, generation states"

KIND_AMOUNT = """((kind = 'grant' AND amount > 0) OR (kind = 'debit' AND amount < 0)
    OR (kind = 'refund' AND amount > 0) OR (kind = 'adjustment' AND amount <> 0))"""
GENERATION_KEY = """(CASE WHEN kind IN ('debit', 'refund')
    THEN generation_id IS NOT NULL AND unique_key IS NOT NULL AND unique_key = kind || ':' || generation_id
    ELSE unique_key IS NULL END)"""
INDEX = "CREATE INDEX ledger_entries_user_sequence ON ledger_entries (user_id, id)"

POSTGRES = [
    INDEX,
    f"ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_amount CHECK {KIND_AMOUNT}",
    f"ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_generation_key CHECK {GENERATION_KEY}",
    """CREATE FUNCTION ledger_entries_check_insert() RETURNS trigger AS $$
    DECLARE stored BIGINT; previous BIGINT;
    BEGIN
      SELECT balance INTO stored FROM accounts WHERE user_id = NEW.user_id;
      SELECT balance_after INTO previous FROM ledger_entries WHERE user_id = NEW.user_id ORDER BY id DESC LIMIT 1;
      IF stored IS DISTINCT FROM NEW.balance_after OR NEW.balance_after <> COALESCE(previous, 0) + NEW.amount THEN
        RAISE EXCEPTION 'ledger: entry does not follow the stored balance of account %', NEW.user_id;
      END IF;
      IF NEW.kind = 'debit' AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = NEW.generation_id
          AND g.user_id = NEW.user_id AND g.credits_charged = -NEW.amount) THEN
        RAISE EXCEPTION 'ledger: a debit needs its generation, charged the same amount';
      END IF;
      IF NEW.kind = 'refund' AND NOT EXISTS (SELECT 1 FROM ledger_entries d WHERE d.unique_key = 'debit:' || NEW.generation_id
          AND d.user_id = NEW.user_id AND -d.amount >= NEW.amount) THEN
        RAISE EXCEPTION 'ledger: a refund needs a debit of the same generation of at least its amount';
      END IF;
      IF NEW.kind = 'refund' AND NEW.actor = 'system' AND EXISTS (SELECT 1 FROM generations g
          WHERE g.id = NEW.generation_id AND g.status = 'succeeded') THEN
        RAISE EXCEPTION 'ledger: only an admin refunds a succeeded generation';
      END IF;
      RETURN NEW;
    END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER ledger_entries_check BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_check_insert()""",
    """CREATE FUNCTION accounts_check_balance() RETURNS trigger AS $$
    DECLARE stored BIGINT; latest BIGINT;
    BEGIN
      SELECT balance INTO stored FROM accounts WHERE user_id = NEW.user_id;
      SELECT balance_after INTO latest FROM ledger_entries WHERE user_id = NEW.user_id ORDER BY id DESC LIMIT 1;
      IF stored <> COALESCE(latest, 0) THEN
        RAISE EXCEPTION 'ledger: the balance of account % is not the sum of its entries', NEW.user_id;
      END IF;
      RETURN NULL;
    END; $$ LANGUAGE plpgsql""",
    """CREATE CONSTRAINT TRIGGER accounts_balance_is_sum AFTER INSERT OR UPDATE ON accounts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION accounts_check_balance()""",
    """CREATE FUNCTION ledger_forbid_change() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'ledger: this change to % is not allowed', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change()""",
    """CREATE TRIGGER accounts_fixed_user BEFORE UPDATE OF user_id ON accounts
    FOR EACH ROW WHEN (NEW.user_id IS DISTINCT FROM OLD.user_id) EXECUTE FUNCTION ledger_forbid_change()""",
    """CREATE TRIGGER admin_actions_append_only BEFORE UPDATE OR DELETE ON admin_actions
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change()""",
    """CREATE FUNCTION generations_check_money() RETURNS trigger AS $$
    BEGIN
      IF TG_OP = 'UPDATE' AND (NEW.id IS DISTINCT FROM OLD.id OR NEW.user_id IS DISTINCT FROM OLD.user_id
          OR NEW.credits_charged IS DISTINCT FROM OLD.credits_charged) THEN
        RAISE EXCEPTION 'ledger: a generation''s id, owner and charge never change';
      END IF;
      IF NEW.credits_refunded IS DISTINCT FROM COALESCE((SELECT amount FROM ledger_entries
          WHERE unique_key = 'refund:' || NEW.id), 0) THEN
        RAISE EXCEPTION 'ledger: credits_refunded must mirror the refund entry of generation %', NEW.id;
      END IF;
      IF NEW.status = 'failed' AND NEW.credits_charged > 0 AND NOT EXISTS (SELECT 1 FROM ledger_entries
          WHERE unique_key = 'refund:' || NEW.id) THEN
        RAISE EXCEPTION 'ledger: charged generation % must be refunded before it is marked failed', NEW.id;
      END IF;
      IF NEW.status = 'succeeded' AND EXISTS (SELECT 1 FROM ledger_entries
          WHERE unique_key = 'refund:' || NEW.id AND actor = 'system') THEN
        RAISE EXCEPTION 'ledger: generation % was refunded as failed and cannot succeed', NEW.id;
      END IF;
      RETURN NEW;
    END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER generations_money BEFORE INSERT OR UPDATE OF id, user_id, credits_charged, credits_refunded, status
    ON generations FOR EACH ROW EXECUTE FUNCTION generations_check_money()""",
]


def _sqlite_guard(name: str, event: str, when: str, message: str) -> str:
    return f"CREATE TRIGGER {name} {event} WHEN {when} BEGIN SELECT RAISE(ABORT, 'ledger: {message}'); END"


_REFUND = "SELECT 1 FROM ledger_entries r WHERE r.unique_key = 'refund:' || NEW.id"
_GENERATION_RULES = [  # (name, when, message), each checked on insert and on update
    (
        "refunded_mirror",
        "NEW.credits_refunded IS NOT COALESCE((SELECT r.amount FROM ledger_entries r "
        "WHERE r.unique_key = 'refund:' || NEW.id), 0)",
        "credits_refunded must mirror the refund entry",
    ),
    (
        "failed_refunded",
        f"NEW.status = 'failed' AND NEW.credits_charged > 0 AND NOT EXISTS ({_REFUND})",
        "a charged generation must be refunded before it is marked failed",
    ),
    (
        "succeeded_not_failed_refund",
        f"NEW.status = 'succeeded' AND EXISTS ({_REFUND} AND r.actor = 'system')",
        "a generation refunded as failed cannot succeed",
    ),
]

SQLITE = [
    INDEX,
    _sqlite_guard(
        "ledger_entries_kind_amount",
        "BEFORE INSERT ON ledger_entries",
        f"NOT {KIND_AMOUNT.replace('kind', 'NEW.kind').replace('amount', 'NEW.amount')}",
        "entry kind and amount sign disagree",
    ),
    _sqlite_guard(
        "ledger_entries_generation_key",
        "BEFORE INSERT ON ledger_entries",
        "NOT "
        + GENERATION_KEY.replace("kind", "NEW.kind")
        .replace("generation_id", "NEW.generation_id")
        .replace("unique_key", "NEW.unique_key"),
        "debits and refunds carry kind:generation as key",
    ),
    _sqlite_guard(
        "ledger_entries_follow_balance",
        "BEFORE INSERT ON ledger_entries",
        "NEW.balance_after IS NOT (SELECT a.balance FROM accounts a WHERE a.user_id = NEW.user_id) "
        "OR NEW.balance_after IS NOT COALESCE((SELECT p.balance_after FROM ledger_entries p "
        "WHERE p.user_id = NEW.user_id ORDER BY p.id DESC LIMIT 1), 0) + NEW.amount",
        "entry does not follow the stored balance",
    ),
    _sqlite_guard(
        "ledger_entries_debit_generation",
        "BEFORE INSERT ON ledger_entries",
        "NEW.kind = 'debit' AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = NEW.generation_id "
        "AND g.user_id = NEW.user_id AND g.credits_charged = -NEW.amount)",
        "a debit needs its generation, charged the same amount",
    ),
    _sqlite_guard(
        "ledger_entries_refund_debit",
        "BEFORE INSERT ON ledger_entries",
        "NEW.kind = 'refund' AND NOT EXISTS (SELECT 1 FROM ledger_entries d "
        "WHERE d.unique_key = 'debit:' || NEW.generation_id AND d.user_id = NEW.user_id "
        "AND -d.amount >= NEW.amount)",
        "a refund needs a debit of the same generation of at least its amount",
    ),
    _sqlite_guard(
        "ledger_entries_refund_succeeded",
        "BEFORE INSERT ON ledger_entries",
        "NEW.kind = 'refund' AND NEW.actor = 'system' AND EXISTS (SELECT 1 FROM generations g "
        "WHERE g.id = NEW.generation_id AND g.status = 'succeeded')",
        "only an admin refunds a succeeded generation",
    ),
    "CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts "
    "BEGIN SELECT RAISE(ABORT, 'ledger: accounts are never deleted'); END",
    _sqlite_guard(
        "accounts_fixed_user",
        "BEFORE UPDATE OF user_id ON accounts",
        "NEW.user_id IS NOT OLD.user_id",
        "an account''s user never changes",
    ),
    "CREATE TRIGGER admin_actions_no_update BEFORE UPDATE ON admin_actions "
    "BEGIN SELECT RAISE(ABORT, 'ledger: admin actions are append-only'); END",
    "CREATE TRIGGER admin_actions_no_delete BEFORE DELETE ON admin_actions "
    "BEGIN SELECT RAISE(ABORT, 'ledger: admin actions are append-only'); END",
    _sqlite_guard(
        "generations_fixed_charge",
        "BEFORE UPDATE OF id, user_id, credits_charged ON generations",
        "NEW.id IS NOT OLD.id OR NEW.user_id IS NOT OLD.user_id OR NEW.credits_charged IS NOT OLD.credits_charged",
        "a generation''s id, owner and charge never change",
    ),
    *(
        _sqlite_guard(f"generations_{name}_insert", "BEFORE INSERT ON generations", when, message)
        for name, when, message in _GENERATION_RULES
    ),
    *(
        _sqlite_guard(
            f"generations_{name}_update", "BEFORE UPDATE OF status, credits_refunded ON generations", when, message
        )
        for name, when, message in _GENERATION_RULES
    ),
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="video_gen", description=DESCRIPTION)

    async def run():
        engine = engine_finder()
        for sql in POSTGRES if engine.engine_type == "postgres" else SQLITE:
            await engine.run_ddl(sql)

    manager.add_raw(run)
    return manager

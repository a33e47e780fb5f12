"""Generation states named once: ``running``, ``succeeded``, ``failed``.

The earlier ``charged``, ``generating`` and ``uploaded`` were one state seen three ways (what was
done is read from the record and from storage); they become ``running``. The database then refuses
any other value.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-28T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "generation states: running, succeeded, failed"

STATES = "('running', 'succeeded', 'failed')"
UPDATE = "UPDATE generations SET status = 'running' WHERE status IN ('charged', 'generating', 'uploaded')"

POSTGRES = [UPDATE, f"ALTER TABLE generations ADD CONSTRAINT generations_status CHECK (status IN {STATES})"]

SQLITE = [
    UPDATE,
    f"""CREATE TRIGGER generations_status_insert BEFORE INSERT ON generations WHEN NEW.status NOT IN {STATES}
    BEGIN SELECT RAISE(ABORT, 'generations: unknown status'); END""",
    f"""CREATE TRIGGER generations_status_update BEFORE UPDATE OF status ON generations WHEN NEW.status NOT IN {STATES}
    BEGIN SELECT RAISE(ABORT, 'generations: unknown status'); END""",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="video_gen", description=DESCRIPTION)

    async def run():
        engine = engine_finder()
        for sql in POSTGRES if engine.engine_type == "postgres" else SQLITE:
            await engine.run_ddl(sql)

    manager.add_raw(run)
    return manager

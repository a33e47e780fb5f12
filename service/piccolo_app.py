"""The Piccolo app: our tables and the top-level ``migrations/`` folder."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from service.admin.tables import AdminAction
from service.generations.tables import Generation
from service.ledger.tables import Account, LedgerEntry

TABLES = [Account, LedgerEntry, Generation, AdminAction]

APP_CONFIG = AppConfig(
    app_name="video_gen",
    migrations_folder_path=str(Path(__file__).resolve().parents[1] / "migrations"),
    table_classes=TABLES,
    migration_dependencies=[],
    commands=[],
)

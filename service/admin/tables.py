"""Admin actions: who did what to whom, and why. Append-only (the ``ledger_invariants`` migration
refuses updates and deletes), written in the same transaction as the ledger entry they caused, and
shown in the audit trail."""

from piccolo.columns import JSON, Text, Timestamptz, Varchar
from piccolo.table import Table


class AdminAction(Table, tablename="admin_actions"):
    admin_id = Varchar(length=255, index=True)
    action = Varchar(length=64)  # grant | refund
    target_user_id = Varchar(length=255, null=True, default=None, index=True)
    generation_id = Varchar(length=64, null=True, default=None, index=True)
    reason = Text(default="")
    details = JSON(default="{}")
    created_at = Timestamptz(index=True)

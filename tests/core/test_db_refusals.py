"""A database's refusal at start in one line, and which refusals waiting cannot mend."""

from __future__ import annotations

import asyncpg

from service.core.db_refusals import describe_connect_error, is_permanent_refusal, redact


def test_postgresql_refusals_name_host_port_and_a_hint() -> None:
    url = "postgresql://bob@db.internal:6543/shop"
    refused = describe_connect_error(url, ConnectionRefusedError(111, "Connect call failed"))
    assert refused.startswith("cannot connect to PostgreSQL at db.internal:6543: ")
    assert "is PostgreSQL running there" in refused
    missing = describe_connect_error(url, asyncpg.InvalidCatalogNameError('database "shop" does not exist'))
    assert "database 'shop' does not exist: create it (`createdb shop`)" in missing
    role = describe_connect_error(url, asyncpg.InvalidAuthorizationSpecificationError('role "bob" does not exist'))
    assert "role 'bob' was refused" in role


def test_sqlite_errors_name_the_file() -> None:
    line = describe_connect_error("sqlite:///var/x.sqlite", OSError("unable to open database file"))
    assert line == "cannot open the SQLite database 'sqlite:///var/x.sqlite': unable to open database file"


def test_only_a_refusal_by_name_is_permanent() -> None:
    assert is_permanent_refusal(asyncpg.InvalidCatalogNameError("no such database"))
    assert is_permanent_refusal(asyncpg.InvalidPasswordError("bad password"))
    assert not is_permanent_refusal(ConnectionRefusedError(111, "refused"))  # not up yet: worth waiting


def test_printed_urls_carry_no_password() -> None:
    assert redact("postgresql://bob:hunter2@db/shop") == "postgresql://bob:***@db/shop"
    assert redact("postgresql://bob@db/shop") == "postgresql://bob@db/shop"
    assert redact("sqlite:///var/x.sqlite") == "sqlite:///var/x.sqlite"

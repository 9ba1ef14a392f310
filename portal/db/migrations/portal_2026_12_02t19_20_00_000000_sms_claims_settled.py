from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import SmallInt, Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.engine.finder import engine_finder

ID = "2026-12-02T19:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "sms claims and settling"

# A claim names its dispatcher (its lease is next_attempt_at), and a text whose send may or
# may not have happened is settled by a bounded number of MessageBird lookups. Rows that
# waited as "unknown" to be sent again now wait as "settling" (looked up, never re-sent
# blind); "unknown" is what could not be found out.
COLUMNS = (
    ("claimed_by", Varchar, {"length": 64, "default": None, "null": True}),
    ("lookups", SmallInt, {"default": 0, "null": False}),
)


async def settle_waiting_unknown() -> None:
    engine = engine_finder()
    assert engine is not None
    await engine.run_ddl(
        "UPDATE sms_message SET status = 'settling' "
        "WHERE status = 'unknown' AND next_attempt_at IS NOT NULL"
    )


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="portal", description=DESCRIPTION
    )
    for column, column_class, extra in COLUMNS:
        manager.add_column(
            table_class_name="SmsMessage",
            tablename="sms_message",
            column_name=column,
            db_column_name=column,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params={
                **extra,
                "primary_key": False,
                "unique": False,
                "index": False,
                "index_method": IndexMethod.btree,
                "choices": None,
                "db_column_name": None,
                "secret": False,
            },
            schema=None,
        )
    manager.add_raw(settle_waiting_unknown)
    return manager

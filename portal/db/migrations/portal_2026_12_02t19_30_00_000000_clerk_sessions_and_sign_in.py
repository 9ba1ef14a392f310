from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import BigInt, Integer, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T19:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "clerk sessions and sign-in"

# staff_user.session_version: in every session cookie, raised by signing out, a new
# password or disabling the account (which ends every session of the person). The
# sign_in_throttle table counts sign-in attempts per username, before the password is
# checked; its epoch is part of the per-client limiter's keys (an unlock raises it).
COLUMNS = (
    ("StaffUser", "staff_user", "session_version", Integer, {"default": 0}),
    ("SignInThrottle", "sign_in_throttle", "username", Varchar, {"length": 64, "default": "", "unique": True}),
    ("SignInThrottle", "sign_in_throttle", "failures", Integer, {"default": 0}),
    ("SignInThrottle", "sign_in_throttle", "window_start", BigInt, {"default": 0}),
    ("SignInThrottle", "sign_in_throttle", "last_at", BigInt, {"default": 0, "index": True}),
    ("SignInThrottle", "sign_in_throttle", "epoch", Integer, {"default": 0}),
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="portal", description=DESCRIPTION
    )
    manager.add_table(
        class_name="SignInThrottle",
        tablename="sign_in_throttle",
        schema=None,
        columns=None,
    )
    for table_class_name, tablename, column, column_class, extra in COLUMNS:
        manager.add_column(
            table_class_name=table_class_name,
            tablename=tablename,
            column_name=column,
            db_column_name=column,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params={
                "null": False,
                "primary_key": False,
                "unique": False,
                "index": False,
                "index_method": IndexMethod.btree,
                "choices": None,
                "db_column_name": None,
                "secret": False,
                **extra,
            },
            schema=None,
        )
    return manager

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Text, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-24T02:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "return qr"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="portal", description=DESCRIPTION
    )
    # Returns made before: "" (the page makes their QR itself).
    for column, column_class, extra in (
        ("qr_svg", Text, {}),
        ("qr_url", Varchar, {"length": 300}),
    ):
        manager.add_column(
            table_class_name="ReturnRequest",
            tablename="return_request",
            column_name=column,
            db_column_name=column,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params={
                **extra,
                "default": "",
                "null": False,
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
    return manager

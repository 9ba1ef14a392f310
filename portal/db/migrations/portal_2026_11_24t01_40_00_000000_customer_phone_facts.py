from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-24T01:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "customer phone facts"


def _varchar(length: int) -> dict[str, object]:
    return {
        "length": length,
        "default": "",
        "null": False,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
    }


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="portal", description=DESCRIPTION
    )
    # Existing customers keep "": the page works both out from the phone for them.
    for column, length in (("phone_masked", 40), ("timezone", 64)):
        manager.add_column(
            table_class_name="Customer",
            tablename="customer",
            column_name=column,
            db_column_name=column,
            column_class_name="Varchar",
            column_class=Varchar,
            params=_varchar(length),
            schema=None,
        )
    return manager

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Text, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-24T01:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "page facts kept"

# What the page showed from per-process caches, now made once and kept: the customer's
# masked phone and time zone, the pickup's handover QR, the return's counter QR. Rows from
# before keep "": the page works them out itself.
COLUMNS = (
    ("Customer", "customer", "phone_masked", Varchar, {"length": 40}),
    ("Customer", "customer", "timezone", Varchar, {"length": 64}),
    ("Pickup", "pickup", "qr_svg", Text, {}),
    ("Pickup", "pickup", "qr_url", Text, {}),
    ("ReturnRequest", "return_request", "qr_svg", Text, {}),
    ("ReturnRequest", "return_request", "qr_url", Text, {}),
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="portal", description=DESCRIPTION
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

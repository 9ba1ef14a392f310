from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Boolean
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-02T19:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "eta date only"

# A shop may give a parcel's ETA as a day alone ("2026-12-05"): kept as noon of that day in
# the shopper's zone, with this flag, so that it is shown (and given back) as that day.
# Rows from before had a moment: False.


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="portal", description=DESCRIPTION
    )
    manager.add_column(
        table_class_name="Shipment",
        tablename="shipment",
        column_name="eta_date_only",
        db_column_name="eta_date_only",
        column_class_name="Boolean",
        column_class=Boolean,
        params={
            "default": False,
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

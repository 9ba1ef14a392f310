from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.base import OnDelete, OnUpdate
from piccolo.columns.column_types import (
    Boolean,
    ForeignKey,
    Integer,
    Serial,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod
from piccolo.table import Table

ID = "2026-12-02T19:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "shopper limits"


class Order(Table, tablename="orders", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


def _params(**extra):
    return {
        "null": False,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
        **extra,
    }


# The changes a shopper made on the page, counted per order by the order's index
# (PORTAL_SHOPPER_CHANGES_PER_HOUR); what a newer change or message supersedes.
ACTION = ("ShopperAction", "shopper_action")
COLUMNS = (
    (*ACTION, "id", Serial, _params(primary_key=True)),
    (
        *ACTION,
        "order",
        ForeignKey,
        _params(
            references=Order,
            on_delete=OnDelete.cascade,
            on_update=OnUpdate.cascade,
            target_column=None,
            index=True,
        ),
    ),
    (*ACTION, "action", Varchar, _params(length=24, default="")),
    (*ACTION, "at", Timestamptz, _params(default=TimestamptzNow())),
    ("SmsMessage", "sms_message", "requested", Boolean, _params(default=False)),
    ("SmsMessage", "sms_message", "subject", Varchar, _params(length=64, default=None, null=True)),
    ("ShopEvent", "shop_event", "subject", Varchar, _params(length=64, default=None, null=True)),
    ("DeliveryChange", "delivery_change", "supersedes", Integer, _params(default=None, null=True)),
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)
    manager.add_table(class_name=ACTION[0], tablename=ACTION[1], schema=None, columns=None)
    for table_class_name, tablename, column, column_class, params in COLUMNS:
        manager.add_column(
            table_class_name=table_class_name,
            tablename=tablename,
            column_name=column,
            db_column_name=column,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )
    return manager

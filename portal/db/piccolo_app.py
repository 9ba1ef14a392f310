"""Piccolo app registration, so `piccolo migrations` and `python -m portal migrate` find us."""

from __future__ import annotations

import os

from piccolo.conf.apps import AppConfig

from portal.db.tables import ALL_TABLES

APP_CONFIG = AppConfig(
    app_name="portal",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "migrations"),
    table_classes=list(ALL_TABLES),
    migration_dependencies=[],
    commands=[],
)

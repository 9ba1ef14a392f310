"""Piccolo's configuration, read from PORTAL_DATABASE_URL like the rest of the app."""

from __future__ import annotations

import os

from piccolo.conf.apps import AppRegistry

from portal.db import make_engine

DB = make_engine(os.environ.get("PORTAL_DATABASE_URL", "sqlite:///portal.db"))
APP_REGISTRY = AppRegistry(apps=["portal.db.piccolo_app"])

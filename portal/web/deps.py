"""Names handlers use to ask for what the app provides."""

from __future__ import annotations

from litestar.di import NamedDependency

from portal.runtime import Runtime

RT = NamedDependency[Runtime]

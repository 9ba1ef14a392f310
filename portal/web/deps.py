"""Names handlers use to ask for what the app provides."""

from __future__ import annotations

from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import Parameter

from portal.runtime import Runtime

RT = NamedDependency[Runtime]

# A row id in a URL (a PostgreSQL integer): out of range is a 400, not a failing query.
RowId = Annotated[int, Parameter(ge=1, le=2**31 - 1)]

"""The portal as an operator serves it (`python -m portal serve --workers 2`, no proxy in
front): what a client sends in forwarded headers does not change who it is.

One server for the module: starting one takes a few seconds."""

from __future__ import annotations

import http.client
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.test_serving import (
    each_listens,
    free_port,
    linux_only,
    start_serving,
    stop_group,
    wait_for,
    workers_of,
)

pytestmark = linux_only


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, tmp: Path) -> None:
        self.proc, self.port, self.tmp = proc, port, tmp

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("served")
    shutil.copy(sqlite_template, tmp / "portal.db")
    port = free_port()
    proc = start_serving(tmp, port, PORTAL_DATABASE_URL=f"sqlite:///{tmp / 'portal.db'}")
    try:
        wait_for(lambda: len(workers_of(proc.pid)) == 2)
        wait_for(lambda: each_listens(port, workers_of(proc.pid)))
        yield Served(proc, port, tmp)
    finally:
        stop_group(proc)


def test_a_local_client_rotating_x_forwarded_for_does_not_walk_past_the_limiter(served):
    conn = served.connect()  # one keep-alive connection: one worker, whose limit is 120
    statuses = []
    for i in range(125):
        conn.request(
            "GET", "/t/AAAAAAAAAAAAAAAAAAAAAA", headers={"X-Forwarded-For": f"198.51.100.{i}"}
        )
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    conn.close()
    assert set(statuses[:100]) == {404}
    assert statuses[-5:] == [429] * 5, statuses[-10:]

"""The portal as an operator serves it (`python -m portal serve --workers 2`, no proxy in
front): what a client sends in forwarded headers does not change who it is, and a scrape of
/metrics, whichever worker answers it, counts what both workers did.

One server for the module: starting one takes a few seconds."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, TEST_SECRET
from tests.web.test_metrics import key, samples
from tests.web.test_serving import (
    ESTABLISHED,
    each_listens,
    free_port,
    linux_only,
    sockets_by_worker,
    start_serving,
    stop_group,
    wait_for,
    workers_of,
)

pytestmark = linux_only
TOKEN = "scrape-token-0123456789"


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, tmp: Path) -> None:
        self.proc, self.port, self.tmp = proc, port, tmp
        self.scheduler_port = 0

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)


def start_scheduler(tmp: Path, port: int) -> subprocess.Popen[str]:
    """`python -m scheduler` alone, its metrics on `port`, on a database of its own."""
    shutil.copy(tmp / "portal.db", tmp / "scheduler.db")
    return subprocess.Popen(
        [sys.executable, "-m", "scheduler"],
        cwd=ROOT,
        env={
            **os.environ,
            "PORTAL_DATABASE_URL": f"sqlite:///{tmp / 'scheduler.db'}",
            "PORTAL_SECRET_KEY": TEST_SECRET,
            "PORTAL_METRICS_PORT": str(port),
            "PORTAL_METRICS_TOKEN": TOKEN,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Served]:
    """The server, and a scheduler alone started with it (its first run comes 5 s later:
    meanwhile the other tests run)."""
    tmp = tmp_path_factory.mktemp("served")
    shutil.copy(sqlite_template, tmp / "portal.db")
    port, scheduler_port = free_port(), free_port()
    proc = start_serving(
        tmp,
        port,
        PORTAL_DATABASE_URL=f"sqlite:///{tmp / 'portal.db'}",
        PORTAL_METRICS_TOKEN=TOKEN,
        TMPDIR=str(tmp),
    )
    scheduler = start_scheduler(tmp, scheduler_port)
    try:
        wait_for(lambda: len(workers_of(proc.pid)) == 2)
        wait_for(lambda: each_listens(port, workers_of(proc.pid)))
        served = Served(proc, port, tmp)
        served.scheduler_port = scheduler_port
        yield served
    finally:
        stop_group(proc)
        stop_group(scheduler)


def test_a_local_client_rotating_x_forwarded_for_does_not_walk_past_the_limiter(served):
    conn = served.connect()  # one keep-alive connection: one worker, whose limit is 120
    statuses = []
    # The limit counts per clock minute: 120 misses pass in the first minute the run
    # touches, so a 429 comes by the 241st miss even when the run straddles two minutes.
    for i in range(245):
        conn.request(
            "GET", "/t/AAAAAAAAAAAAAAAAAAAAAA", headers={"X-Forwarded-For": f"198.51.100.{i}"}
        )
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
        if response.status == 429:
            break
    conn.close()
    assert statuses[-1] == 429, statuses[-10:]
    assert set(statuses[:-1]) == {404} and len(statuses) <= 241


def scrape(served: Served, token: str = TOKEN) -> http.client.HTTPResponse:
    conn = served.connect()  # a connection of its own: any worker may answer
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


def test_a_scrape_of_either_worker_counts_the_requests_both_served(served):
    workers = workers_of(served.proc.pid)
    conns = [served.connect() for _ in range(24)]
    for conn in conns:
        conn.connect()
    for conn in conns:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}'
    held = sockets_by_worker(served.port, workers, ESTABLISHED)
    assert min(held.values()) >= 1, held  # both workers served some of them
    for conn in conns:
        conn.close()
    healthz = key("portal_http_requests_total", method="GET", route="/healthz", status="200")
    for _ in range(6):  # whichever worker answers: the same whole figure
        response = scrape(served)
        assert response.status == 200
        assert samples(response.body.decode())[healthz] == 24  # type: ignore[attr-defined]
    assert scrape(served, token="not-the-token").status == 401


def test_sigterm_removes_the_workers_metrics_directory(served):
    assert [p.name[:15] for p in served.tmp.iterdir() if p.is_dir()] == ["portal-metrics-"]
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=40) == 0
    assert not [p for p in served.tmp.iterdir() if p.is_dir()]


def test_the_scheduler_alone_serves_its_counters_on_its_metrics_port(served):
    runs = key("portal_job_runs_total", job="dispatch_outbox")

    def scraped(token: str = TOKEN) -> tuple[int, dict[Any, float]]:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", served.scheduler_port, timeout=2)
            conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            return response.status, samples(response.read().decode())
        except OSError:  # not listening yet
            return 0, {}

    wait_for(lambda: scraped()[1].get(runs, 0) >= 1)  # its first run of the outbox job
    assert scraped("not-the-token")[0] == 401

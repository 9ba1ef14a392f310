"""`python -m portal serve --workers N` as an operator runs it: the workers share the
connections, a worker that dies is replaced, SIGTERM stops them all, workers do not outlive
their supervisor, and a port that is taken or workers that cannot start are clear errors."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_SECRET


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workers_of(pid: int) -> list[int]:
    """The web workers (spawned children) of the serving process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


LISTEN, ESTABLISHED = "0A", "01"


def sockets_by_worker(port: int, workers: list[int], state: str) -> dict[int, int]:
    """How many sockets on `port` (local side) in `state` each worker holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == state:
                inodes.add(fields[9])
    held = {}
    for pid in workers:
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(os.readlink(fd))
            except OSError:  # closed while we looked
                continue
        held[pid] = sum(1 for link in links if link.removeprefix("socket:[")[:-1] in inodes)
    return held


def each_listens(port: int, workers: list[int]) -> bool:
    return sockets_by_worker(port, workers, LISTEN) == {pid: 1 for pid in workers}


def healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def wait_for(check, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def start_serving(tmp_path: Path, port: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "portal", "serve", "--workers", "2", "--port", str(port)],
        cwd=ROOT,
        env={
            **os.environ,
            "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            "PORTAL_SECRET_KEY": TEST_SECRET,
            "PORTAL_RUN_SCHEDULER": "0",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: teardown reaches every worker
    )


def stop_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = start_serving(tmp_path, port)
    try:
        wait_for(lambda: len(workers_of(proc.pid)) == 2)
        wait_for(lambda: each_listens(port, workers_of(proc.pid)))
        yield proc, port
    finally:
        stop_group(proc)


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balance, /proc")


@linux_only
def test_workers_share_connections_a_dead_one_is_replaced_and_sigterm_stops_all(server):
    proc, port = server
    workers = workers_of(proc.pid)
    assert each_listens(port, workers)  # a socket each, where uvicorn's workers share one

    # 32 keep-alive connections opened at once, as a proxy's pool or a load test opens them.
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(32)]
    for conn in conns:
        conn.connect()
    for conn in conns:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}'
    held = sockets_by_worker(port, workers, ESTABLISHED)
    assert sum(held.values()) == 32
    # The kernel deals them out by address: each worker gets its share, never nearly none.
    assert min(held.values()) >= 6, held
    for conn in conns:
        conn.close()

    os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer would
    wait_for(lambda: len(set(workers_of(proc.pid)) - {workers[0]}) == 2)
    replacement = (set(workers_of(proc.pid)) - set(workers)).pop()
    wait_for(lambda: each_listens(port, [replacement, workers[1]]))  # it serves again
    assert healthy(port)

    last = workers_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert not [pid for pid in last if Path(f"/proc/{pid}").exists()]
    assert not healthy(port)
    output = proc.stdout.read() if proc.stdout else ""
    assert "a web worker stopped" in output
    assert "Traceback" not in output


@linux_only
def test_workers_stop_when_their_supervisor_is_killed(server):
    proc, port = server
    workers = workers_of(proc.pid)
    proc.kill()  # SIGKILL: it cannot stop them itself
    proc.wait()
    wait_for(lambda: not [pid for pid in workers if Path(f"/proc/{pid}").exists()])
    assert not healthy(port)


@linux_only
def test_workers_that_cannot_start_stop_the_server_with_an_error(tmp_path: Path):
    # A database that is not there: each worker's start-up (the app's lifespan) fails.
    port = free_port()
    proc = start_serving(
        tmp_path, port, PORTAL_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere"
    )
    try:
        assert proc.wait(timeout=60) == 1
        output = proc.stdout.read() if proc.stdout else ""
        assert "a web worker failed to start" in output
        assert not healthy(port)
    finally:
        stop_group(proc)


@linux_only
def test_a_taken_port_is_a_clear_error(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_serving(tmp_path, port)
        try:
            assert proc.wait(timeout=60) == 1
            output = proc.stdout.read() if proc.stdout else ""
        finally:
            stop_group(proc)
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert "Traceback" not in output

"""`python -m portal serve --workers N` as an operator runs it: the workers share the
connections, a worker that dies is replaced, SIGTERM stops them all, a taken port is a
clear error."""

from __future__ import annotations

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


def connections_by_worker(port: int, workers: list[int]) -> dict[int, int]:
    """How many established connections to `port` each worker holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED, server side
                inodes.add(fields[9])
    held = {}
    for pid in workers:
        fds = Path(f"/proc/{pid}/fd")
        links = [os.readlink(fd) for fd in fds.iterdir()]
        held[pid] = sum(1 for link in links if link.removeprefix("socket:[")[:-1] in inodes)
    return held


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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "PORTAL_SECRET_KEY": TEST_SECRET,
        "PORTAL_RUN_SCHEDULER": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "portal", "serve", "--workers", "2", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: healthy(port) and len(workers_of(proc.pid)) == 2)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers_of(proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_workers_share_connections_a_dead_one_is_replaced_and_sigterm_stops_all(server):
    proc, port = server
    workers = workers_of(proc.pid)

    # 32 keep-alive connections opened at once, as a proxy's pool or a load test opens them.
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(32)]
    for conn in conns:
        conn.connect()
    for conn in conns:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}'
    held = connections_by_worker(port, workers)
    assert sum(held.values()) == 32
    # The kernel deals them out by address: each worker gets its share, never nearly none.
    assert min(held.values()) >= 6, held
    for conn in conns:
        conn.close()

    os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer would
    wait_for(lambda: len(set(workers_of(proc.pid)) - {workers[0]}) == 2)
    wait_for(lambda: healthy(port))
    assert workers[1] in workers_of(proc.pid)

    last = workers_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert not [pid for pid in last if Path(f"/proc/{pid}").exists()]
    assert not healthy(port)
    output = proc.stdout.read() if proc.stdout else ""
    assert "a web worker stopped" in output
    assert "Traceback" not in output


def test_a_taken_port_is_a_clear_error(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "portal", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env={
                **os.environ,
                "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
                "PORTAL_SECRET_KEY": TEST_SECRET,
                "PORTAL_RUN_SCHEDULER": "0",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout

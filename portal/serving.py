"""`python -m portal serve --workers N`: N uvicorn processes that share the port evenly.

uvicorn's own workers share one listening socket, and whichever is awake takes the
connections that arrive: a burst of keep-alive connections (a proxy's pool, a load test)
lands mostly on one of them. Measured with 64 connections to 2 workers: 52 and 12, 45 and
19. Both workers stay busy, but the clients of the crowded one wait three or four times as
long (the tracking page's p99 is set by them). Here each worker listens on a socket of its
own on the same port (SO_REUSEPORT), and the kernel deals the connections out among them
by address: evenly, whatever the workers are doing at the time.

This process only watches: it starts the workers, starts another when one dies (again and
again, waiting longer each time, while a replacement cannot start), and on SIGINT, SIGTERM
or SIGHUP stops them all (each finishes its requests, as uvicorn does). If one of the first
workers cannot start (configuration, database), it stops them all and exits with 1. A worker
whose supervisor is gone stops by itself. A worker listens only once its app has started, so
no connection waits on one that is still starting. Off Linux (where SO_REUSEPORT does not
balance), or for one worker, uvicorn serves as it is. Several workers share a directory for
their metrics (`shared_metrics`), so that a scrape of one tells the counts of all.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

from portal.metrics import MULTIPROC_DIR
from portal.settings import Settings

log = logging.getLogger(__name__)

STOP_SECONDS = 30.0
# Waits between attempts to replace a worker that cannot start: 1, 2, 4 ... 30 s.
RETRY_FIRST, RETRY_MOST = 1.0, 30.0


def serve(app: str, *, host: str, port: int, workers: int, **config: Any) -> int:
    """Serve `app` (an import string; the rest as uvicorn.Config) until told to stop."""
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, workers=workers, **config)
        return 0
    with shared_metrics():
        if port == 0 or sys.platform != "linux":
            uvicorn.run(app, host=host, port=port, workers=workers, **config)
            return 0
        try:
            _port_is_free(host, port)
        except OSError as exc:
            log.error("cannot listen on %s:%s: %s", host, port, exc.strerror or exc)
            return 1
        return _Supervisor(app, host, port, workers, config).run()


@contextmanager
def shared_metrics() -> Iterator[None]:
    """A fresh directory where the workers (started meanwhile) keep their metrics, so that
    a scrape of any of them counts them all (portal/metrics.py); removed at the end."""
    path = tempfile.mkdtemp(prefix="portal-metrics-")
    os.environ[MULTIPROC_DIR] = path
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_DIR, None)
        shutil.rmtree(path, ignore_errors=True)


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's own proxy handling (client address and scheme from X-Forwarded-*), by the
    rule of portal.web.client: on only for PORTAL_TRUSTED_PROXIES, and then for them alone.
    Left to itself uvicorn trusts 127.0.0.1, so that any local client could name itself."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(settings.trusted_proxies)}


def listening_socket(host: str, port: int, *, shared: bool = True) -> socket.socket:
    """Bound, not yet listening: uvicorn listens once the app has started."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _port_is_free(host: str, port: int) -> None:
    """Raise OSError when anything listens on the port, another server of ours included
    (a socket without SO_REUSEPORT cannot join the group of one that has it)."""
    listening_socket(host, port, shared=False).close()


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: Any) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # the app's start-up (lifespan) went well: it listens and serves
            self.ready.value = 1


def _stop_with_parent() -> None:
    """A worker whose supervisor died (SIGKILL) stops too, instead of serving unwatched."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _worker(app: str, host: str, port: int, config: dict[str, Any], ready: Any) -> None:
    try:
        _stop_with_parent()
        sock = listening_socket(host, port)
        _Server(uvicorn.Config(app, host=host, port=port, **config), ready).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl+C while still starting: nothing to report
        pass


class _Supervisor:
    def __init__(
        self, app: str, host: str, port: int, workers: int, config: dict[str, Any]
    ) -> None:
        self.args = (app, host, port, config)
        self.count = workers
        self.context = multiprocessing.get_context("spawn")
        self.stopping = False

    def _start(self) -> tuple[BaseProcess, Any]:
        ready = self.context.RawValue("b", 0)  # lock-free: a worker may die while setting it
        process = self.context.Process(target=_worker, args=(*self.args, ready), name="portal-web")
        process.start()
        return process, ready

    def _stop(self, *_: Any) -> None:
        self.stopping = True  # only a flag: a signal handler must not take locks

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._stop)
        app, host, port, _ = self.args
        log.info("serving %s on %s:%s with %s workers", app, host, port, self.count)
        workers: list[tuple[BaseProcess, Any]] = []
        try:
            return self._watch(workers)
        finally:
            self._stop_all(workers)

    def _watch(self, workers: list[tuple[BaseProcess, Any]]) -> int:
        workers.extend(self._start() for _ in range(self.count))
        serving = False  # once all of the first workers have started
        retry_at: dict[int, float] = {}  # slot -> when to try to replace it again
        wait = [RETRY_FIRST] * self.count
        while not self.stopping:
            time.sleep(0.2)
            if not serving and all(ready.value for _, ready in workers):
                serving = True
                log.info("%s web workers serving on %s:%s", self.count, *self.args[1:3])
            for i, (process, ready) in enumerate(workers):
                if self.stopping or process.is_alive():
                    continue
                if not serving and not ready.value:
                    # One of the first never started (configuration, database): the others
                    # would fail the same way, so the server stops with an error.
                    log.error("a web worker failed to start (exit code %s)", process.exitcode)
                    return 1
                if i not in retry_at:
                    if ready.value:  # it had served: replace it now
                        log.warning(
                            "a web worker stopped (exit code %s); starting another",
                            process.exitcode,
                        )
                        wait[i] = RETRY_FIRST
                        retry_at[i] = time.monotonic()
                    else:  # its replacement could not start: try again, later each time
                        log.error(
                            "a web worker could not start (exit code %s); trying again in %s s",
                            process.exitcode,
                            wait[i],
                        )
                        retry_at[i] = time.monotonic() + wait[i]
                        wait[i] = min(wait[i] * 2, RETRY_MOST)
                if time.monotonic() >= retry_at[i]:
                    del retry_at[i]
                    workers[i] = self._start()
        return 0

    def _stop_all(self, workers: list[tuple[BaseProcess, Any]]) -> None:
        for process, _ in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes its requests and stops
        deadline = time.monotonic() + STOP_SECONDS
        for process, _ in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()

"""`python -m portal serve --workers N`: N uvicorn processes that share the port evenly.

uvicorn's own workers share one listening socket, and whichever is awake takes the
connections that arrive: a burst of keep-alive connections (a proxy's pool, a load test)
lands mostly on one of them. Measured with 64 connections to 2 workers: 52 and 12, 45 and
19. Both workers stay busy, but the clients of the crowded one wait three or four times as
long (the tracking page's p99 is set by them). Here each worker listens on a socket of its
own on the same port (SO_REUSEPORT), and the kernel deals the connections out among them
by address: evenly, whatever the workers are doing at the time.

This process only watches: it starts the workers, starts another when one dies, and on
SIGINT or SIGTERM stops them all (each finishes its requests, as uvicorn does). Where the
platform has no SO_REUSEPORT, or for one worker, uvicorn serves as it is.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

BACKLOG = 2048
STOP_SECONDS = 30.0


def serve(app: str, *, host: str, port: int, workers: int, **config: Any) -> int:
    """Serve `app` (an import string; the rest as uvicorn.Config) until told to stop."""
    if workers <= 1 or port == 0 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(app, host=host, port=port, workers=workers, **config)
        return 0
    try:
        _port_is_free(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc.strerror or exc)
        return 1
    return _Supervisor(app, host, port, workers, config).run()


def listening_socket(host: str, port: int, *, shared: bool = True) -> socket.socket:
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
    def __init__(self, config: uvicorn.Config, ready: EventType) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # the app's start-up (lifespan) went well: it serves
            self.ready.set()


def _worker(app: str, host: str, port: int, config: dict[str, Any], ready: EventType) -> None:
    sock = listening_socket(host, port)
    sock.listen(BACKLOG)
    _Server(uvicorn.Config(app, host=host, port=port, **config), ready).run(sockets=[sock])


class _Supervisor:
    def __init__(
        self, app: str, host: str, port: int, workers: int, config: dict[str, Any]
    ) -> None:
        self.args = (app, host, port, config)
        self.count = workers
        self.context = multiprocessing.get_context("spawn")
        self.stop = threading.Event()

    def _start(self) -> tuple[BaseProcess, EventType]:
        ready = self.context.Event()
        process = self.context.Process(target=_worker, args=(*self.args, ready), name="portal-web")
        process.start()
        return process, ready

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stop.set())
        app, host, port, _ = self.args
        log.info("serving %s on %s:%s with %s workers", app, host, port, self.count)
        workers = [self._start() for _ in range(self.count)]
        failed = False
        while not failed and not self.stop.wait(0.5):
            for i, (process, ready) in enumerate(workers):
                if process.is_alive():
                    continue
                if not ready.is_set():
                    # It never served (configuration, database): another would fail the
                    # same way, so the server stops with an error instead.
                    log.error("a web worker failed to start (exit code %s)", process.exitcode)
                    failed = True
                    break
                log.warning(
                    "a web worker stopped (exit code %s); starting another", process.exitcode
                )
                workers[i] = self._start()
        for process, _ in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes its requests and stops
        deadline = time.monotonic() + STOP_SECONDS
        for process, _ in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        return 1 if failed else 0

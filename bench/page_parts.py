"""Where the tracking page's CPU goes, in one process, without the network or wrk.

For the token sample that `tracking_page.py` wrote (run that first; it seeds the database),
this measures the CPU per page (this thread's CPU time, best and median of batches) of:

1. the whole page: the app called as ASGI in-process (routing, middleware with the CSRF
   cookie and gzip, the token lookup and the page's query on PostgreSQL, view building,
   rendering);
2. its data alone: `orders.tracking_page` (the page's one query and the view built from it);
3. rendering and gzip of the same pages from memory: each sample page's view and context
   built once beforehand, then only the template and the compression, as a bare app
   serving those very pages would do;
4. rendering and gzip of `bare_app.py`'s one constant view (what the wrk baseline renders).

(1) - (3) is what the page costs beyond rendering what it shows; (3) - (4) is what the
sample's pages show beyond the constant view (pickup cards, delivery and returns cards).
PostgreSQL's own CPU is not in these numbers (it is in `tracking_page.py`'s).

    .venv/bin/python bench/tracking_page.py --orders 1000000 --no-load   # or --reuse
    .venv/bin/python bench/page_parts.py
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bare_app import constant_context, sample_tokens  # noqa: E402
from tracking_page import BENCH_SECRET  # noqa: E402

from portal.app import create_app  # noqa: E402
from portal.services import orders  # noqa: E402
from portal.settings import Settings  # noqa: E402
from portal.web import shopper  # noqa: E402
from portal.web.render import page_callables  # noqa: E402

BATCH = 200


async def asgi_get(app: Any, path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"accept-encoding", b"gzip")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def per_page(batches: int, one: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    """Best and median CPU ms per page over `batches` batches."""
    results = []
    for b in range(batches):
        start = time.thread_time()
        for i in range(BATCH):
            await one(b * BATCH + i)
        results.append((time.thread_time() - start) / BATCH * 1000)
    return min(results), statistics.median(results)


def gzip6(html: str) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, 31)  # as the app's CompressionConfig (level 6)
    return z.compress(html.encode()) + z.flush()


async def main(args: argparse.Namespace) -> None:
    tokens = sample_tokens(args.sample)
    settings = Settings(
        database_url=f"{args.pg}/{args.db}", secret_key=BENCH_SECRET, run_scheduler=False
    )
    app = create_app(settings)
    rt = app.state.rt
    async with app.lifespan():
        for t in tokens:  # warm: the caches a long-running worker has
            assert await asgi_get(app, f"/t/{t}") == 200, t

        async def whole(i: int) -> None:
            await asgi_get(app, f"/t/{tokens[i % len(tokens)]}")

        async def lookup(i: int) -> None:
            await orders.tracking_page(rt, tokens[i % len(tokens)])

        contexts = []
        for t in tokens:
            view = await orders.tracking_page(rt, t)
            assert view is not None
            context = await shopper.page_context(rt, t, view)
            contexts.append(context)
        constant = constant_context(rt, "bench-token")
        for context in [*contexts, constant]:
            context.update(page_callables(context["locale"], "x" * 43))  # as web.render does
        template = rt.templates.get_template(shopper.PAGE)

        async def sample_render(i: int) -> None:
            gzip6(template.render(contexts[i % len(contexts)]))

        async def constant_render(i: int) -> None:
            gzip6(template.render(constant))

        rows = [
            ("whole page (ASGI in-process)", await per_page(args.batches, whole)),
            ("its data: query and view", await per_page(args.batches, lookup)),
            ("render + gzip, the same pages", await per_page(args.batches, sample_render)),
            ("render + gzip, bare's constant", await per_page(args.batches, constant_render)),
        ]
    print(f"{len(tokens):,} sample pages, {args.batches} batches of {BATCH}; CPU ms per page")
    print(f"{'':34} {'best':>6} {'median':>7}")
    for name, (best, median) in rows:
        print(f"{name:34} {best:6.3f} {median:7.3f}")
    (w, _), (q, _), (s, _), (c, _) = (r[1] for r in rows)
    print(f"beyond rendering what it shows (1 - 3): {w - s:.3f} ms ({(w - s) / w:.0%} of the page)")
    print(f"  of which its data, the query and the view (2): {q:.3f} ms")
    print(f"the sample's content beyond the constant view (3 - 4): {s - c:.3f} ms")


def sample_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the seeded database and tracking_page.py's token sample are."""
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="portal_bench")
    parser.add_argument(
        "--sample",
        type=Path,
        default=Path(tempfile.gettempdir()) / "portal-bench" / "portal_bench.tokens.tsv",
        help="the token sample tracking_page.py wrote",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sample_arguments(parser)
    parser.add_argument("--batches", type=int, default=30)
    asyncio.run(main(parser.parse_args()))

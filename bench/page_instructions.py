"""Instructions per tracking page, in one process: a count that does not drift with the
machine's speed, for comparing two versions of the code.

Runs itself under `valgrind --tool=callgrind` with collection off, serves the first N pages
of the token sample that `tracking_page.py` wrote twice to warm up (caches, lazy imports,
statements prepared), then serves them once more inside `functools.reduce`, the only span
callgrind counts (`--toggle-collect=functools_reduce`), and prints the instructions per page.
The app is called as ASGI in-process (as in `page_parts.py`), on PostgreSQL for `app`;
`constant` and `sample` are bare_app.py's two baselines. PostgreSQL's own work is not in
the count, nor are the HTTP server's parsing and the event loop's waiting.

    .venv/bin/python bench/tracking_page.py --orders 1000000 --no-load   # or --reuse
    .venv/bin/python bench/page_instructions.py app            # about 90 s for 100 pages
    .venv/bin/python bench/page_instructions.py constant --pages 100
    ROOT=/path/to/other/checkout .venv/bin/python bench/page_instructions.py app
    # the same count for another version of the code (a `git worktree` or `git archive`)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("ROOT", Path(__file__).resolve().parent.parent))
MARK = "PAGE_INSTRUCTIONS_CHILD"


def measure(args: argparse.Namespace) -> None:
    """The child, under callgrind: warm up, then the counted pass."""
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from bare_app import create_app as bare_app
    from bare_app import sample_tokens
    from page_parts import asgi_get
    from tracking_page import BENCH_SECRET

    from portal.app import create_app
    from portal.settings import Settings

    tokens = sample_tokens(args.sample)[: args.pages]
    database = f"{args.pg}/{args.db}"
    app: Any
    if args.kind == "app":
        settings = Settings(database_url=database, secret_key=BENCH_SECRET, run_scheduler=False)
        app = create_app(settings)
    else:
        os.environ.update(
            BARE_PAGES=args.kind, BARE_DATABASE_URL=database, BARE_SAMPLE=str(args.sample)
        )
        app = bare_app()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    started, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:  # entered and left in one task, as anyio wants
        async with app.lifespan():
            started.set()
            await stop.wait()

    running = loop.create_task(lifespan())
    ready = loop.create_task(started.wait())
    loop.run_until_complete(asyncio.wait([running, ready], return_when=asyncio.FIRST_COMPLETED))
    if running.done():  # the app did not start (the database, say): its error
        running.result()

    async def serve_all() -> None:
        for token in tokens:
            status = await asgi_get(app, f"/t/{token}")
            if status != 200:
                raise SystemExit(f"/t/<token> answered {status}")

    loop.run_until_complete(serve_all())
    loop.run_until_complete(serve_all())
    functools.reduce(lambda _a, _b: loop.run_until_complete(serve_all()), [0, 1])
    stop.set()
    loop.run_until_complete(running)
    print(f"pages {len(tokens)}")


def main() -> int:
    from page_parts import sample_arguments  # this checkout's bench/ (the script's folder)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["app", "constant", "sample"])
    parser.add_argument("--pages", type=int, default=100)
    sample_arguments(parser)
    args = parser.parse_args()
    if os.environ.get(MARK):
        measure(args)
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is needed: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=functools_reduce",
                f"--callgrind-out-file={tmp}/callgrind.out",
                sys.executable,
                __file__,
                *sys.argv[1:],
            ],
            env={**os.environ, MARK: "1", "ROOT": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
        )
    counted = re.search(r"Collected : (\d+)", done.stderr)
    pages = re.search(r"pages (\d+)", done.stdout)
    if done.returncode != 0 or counted is None or pages is None:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        return 1
    per_page = int(counted.group(1)) / int(pages.group(1))
    print(f"{args.kind} ({ROOT}): {per_page:,.0f} instructions a page over {pages.group(1)} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())

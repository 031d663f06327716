"""What the link server's checks cost per request, next to a bare aiohttp baseline, in one run.

    .venv/bin/python bench/linkserver.py [--requests 300]

The link server runs with the daemon's own journal lookup (daemon/views.py, SQLite WAL) in a temp
state dir; one keep-alive HTTP connection asks, one request after another, for: a normal link's
page and photo, a made-up link (404), a throttled address's miss (429), and the view-once
reveal (POST → 303: a journal write with fsync). The baseline is a bare aiohttp handler that
answers the same photo bytes with no lookup at all.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from PIL import Image  # noqa: E402

from daemon.app import build_runtime  # noqa: E402
from daemon.backends.local import link_key  # noqa: E402
from daemon.journal import Share  # noqa: E402
from daemon.ratelimit import MissLimiter  # noqa: E402
from daemon.server import LinkServer, new_token  # noqa: E402
from daemon.settings import Settings  # noqa: E402
from daemon.views import LinkShares  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def timed(port: int, requests: list[tuple[str, str]], expect: int) -> list[float]:
    """Milliseconds per request over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    try:
        for method, path in requests:
            start = time.perf_counter()
            conn.request(method, path)
            response = conn.getresponse()
            response.read()
            out.append((time.perf_counter() - start) * 1000)
            if response.status != expect:
                raise SystemExit(f"{method} {path[:8]}…: {response.status}, expected {expect}")
    finally:
        conn.close()
    return out


def live_share(rt, token: str, served: str, *, once: bool) -> Share:
    now = time.time()
    taken = rt.journal.add_pending(
        f"/bench/{token[:6]}.jpg",
        1,
        1,
        backend="local",
        lifetime_s=3600,
        now=now,
        remember=False,
        once=once,
    )
    share = taken[0] if isinstance(taken, tuple) else taken
    rt.journal.set_prepared(share.id, "/bench/prepared.jpg", "x", now)
    rt.journal.to_uploading(share.id, served, now)
    rt.journal.to_live(share.id, f"http://bench/{token}", link_key(token), now, now + 3600)
    return share


async def bench(n: int, state: Path) -> dict[str, list[float]]:
    settings = Settings(state_dir=state, share_dir=state / "share")
    rt = build_runtime(settings, time.time)
    photo = rt.paths.served / "photo.jpg"
    Image.effect_noise((1600, 1200), 40).convert("RGB").save(photo, quality=85)
    normal = new_token()
    live_share(rt, normal, "photo.jpg", once=False)
    onces = [new_token() for _ in range(n)]
    for token in onces:
        live_share(rt, token, "photo.jpg", once=True)

    async def first_view(share: Share) -> None:
        return None

    links = LinkShares(rt, first_view)
    server = LinkServer(
        links.lookup,
        reveal=links.reveal,
        viewed=links.viewed,
        bind="127.0.0.1:0",
        limiter=MissLimiter(limit=10**9),  # misses measured as 404s, not throttled
    )
    throttling = LinkServer(links.lookup, bind="127.0.0.1:0", limiter=MissLimiter(limit=1))
    data = photo.read_bytes()

    async def bare(_request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{tail:.*}", bare)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    await server.start()
    await throttling.start()
    try:
        ports = {
            "server": server._runner.addresses[0][1],  # type: ignore[union-attr]
            "throttling": throttling._runner.addresses[0][1],  # type: ignore[union-attr]
            "bare": runner.addresses[0][1],
        }

        def run(port: str, reqs: list[tuple[str, str]], expect: int) -> list[float]:
            return timed(ports[port], reqs, expect)

        cases = {
            "baseline: bare aiohttp, photo bytes": ("bare", [("GET", "/x")] * n, 200),
            "normal link: page": ("server", [("GET", f"/{normal}")] * n, 200),
            "normal link: photo (+ view counted)": (
                "server",
                [("GET", f"/{normal}/photo.jpg")] * n,
                200,
            ),
            "made-up link: 404": (
                "server",
                [("GET", f"/{new_token()}") for _ in range(n)],
                404,
            ),
            "throttled address: 429": (
                "throttling",
                [("GET", f"/{new_token()}") for _ in range(n)],
                429,
            ),
            "view-once: page with the button": ("server", [("GET", f"/{onces[0]}")] * n, 200),
            "view-once: the reveal (POST → 303)": (
                "server",
                [("POST", f"/{t}") for t in onces],
                303,
            ),
        }
        # The throttling server needs one miss before it throttles.
        await asyncio.to_thread(run, "throttling", [("GET", f"/{new_token()}")], 404)
        results = {}
        for label, (port, reqs, expect) in cases.items():
            results[label] = await asyncio.to_thread(run, port, reqs, expect)
        return results
    finally:
        await server.stop()
        await throttling.stop()
        await runner.cleanup()
        await rt.cancel_tasks()
        rt.pool.shutdown(wait=True)
        rt.journal.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="fl-bench-"))
    try:
        for key in [k for k in os.environ if k.startswith("FADELINK_")]:
            del os.environ[key]
        results = asyncio.run(bench(args.requests, state))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"link server, {args.requests} requests per case over one keep-alive connection (ms)")
    print(f"{'case':<40}{'n':>5}{'p50':>9}{'p95':>9}")
    for label, values in results.items():
        print(f"{label:<40}{len(values):>5}{pct(values, 50):>9.2f}{pct(values, 95):>9.2f}")
    print(f"({os.cpu_count()} CPUs; baseline and cases measured in this same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""python -m router --config gateway.json [--secrets secrets.json]"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal

import uvloop
from aiohttp import web

from router import config as gateway_config
from router.api.app import build_app
from router.config import GatewayConfig

log = logging.getLogger("router")


async def serve(app: web.Application, config: GatewayConfig) -> None:
    """Serve until SIGTERM or SIGINT; then stop listening, let requests in flight finish (up to
    shutdown_timeout_s), cancel the rest (aborting their legs), flush the access log, return.
    The signals are taken here, not by aiohttp's run_app: there a second SIGTERM during the drain
    (a supervisor repeating itself) broke off the clean-up, and the buffered access-log lines
    of requests already answered were lost."""
    # handler_cancellation: a client that disconnects cancels its request, which aborts both legs.
    runner = web.AppRunner(
        app, access_log=None, handler_cancellation=True, shutdown_timeout=config.shutdown_timeout_s
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)  # once stopping, more signals change nothing
        log.info("gateway listening on http://%s:%d", config.host, config.port)
        await stop.wait()
        log.info("stopping: requests in flight get up to %.0f s", config.shutdown_timeout_s)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m router")
    parser.add_argument("--config", required=True, help="gateway config (JSON or YAML)")
    parser.add_argument(
        "--secrets", help="JSON: api_keys, admin_token, server_api_key, overriding the config's"
    )
    args = parser.parse_args(argv)
    config = gateway_config.load(args.config)
    if args.secrets:
        try:
            config = gateway_config.with_secrets(config, gateway_config.load_secrets(args.secrets))
        except (OSError, ValueError) as err:
            parser.error(str(err))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = build_app(config)
    # The tokenizers (transformers) leave a large heap of long-lived objects; frozen, the cyclic
    # GC stops walking them on every full collection (pauses of 100+ ms under load otherwise).
    gc.collect()
    gc.freeze()
    uvloop.run(serve(app, config))


if __name__ == "__main__":
    main()

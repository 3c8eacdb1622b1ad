"""python -m router --config gateway.json"""

from __future__ import annotations

import argparse
import gc
import logging

import uvloop
from aiohttp import web

from router import config as gateway_config
from router.app import build_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m router")
    parser.add_argument("--config", required=True, help="gateway config (JSON or YAML)")
    args = parser.parse_args(argv)
    config = gateway_config.load(args.config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvloop.install()
    app = build_app(config)
    # The tokenizers (transformers) leave a large heap of long-lived objects; frozen, the cyclic
    # GC stops walking them on every full collection (pauses of 100+ ms under load otherwise).
    gc.collect()
    gc.freeze()
    # handler_cancellation: a client that disconnects cancels its request, which aborts both legs.
    # SIGTERM: stop listening, let requests in flight finish (up to shutdown_timeout_s), then
    # cancel the rest (aborting their legs) and exit 0.
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=config.shutdown_timeout_s,
    )


if __name__ == "__main__":
    main()

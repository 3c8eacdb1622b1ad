"""The PD legs' HTTP client: keep-alive HTTP/1.1 connections per server, one POST with a body
encoded once, the answer read whole or line by line (SSE), on asyncio and httptools (llhttp).

Why not aiohttp's client here: its ClientSession spends more Python per request than the rest of
the gateway together (profiled: ~35% of the gateway's CPU for two legs per request); the legs need
none of its features (redirects, cookies, proxies, TLS, compression). Health checks, load polls,
aborts and the admin API keep using aiohttp."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools


class Refused(ConnectionError):
    """The server could not be reached at all: nothing was sent."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.start()

    def start(self) -> None:
        """Ready for the next response on this connection."""
        self.status = 0
        self.headers_done = self.complete = self.received = False
        self.keep_alive = True
        self.body: deque[bytes] = deque()
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self.error = ConnectionError(f"malformed HTTP answer: {err}")
            self.transport.close()  # type: ignore[union-attr]
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            self.error = exc or ConnectionResetError("the server closed the connection")
        self._wake()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        """Until the next callback; raises the connection's error. Callers check their condition
        first (callbacks set flags before waking, on this same thread)."""
        if self.error is None:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
            self.waiter = None
        if self.error is not None:
            raise self.error

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None


class Response:
    def __init__(self, pool: UpstreamPool, key: tuple[str, int], conn: _Connection) -> None:
        self.pool, self.key, self.conn = pool, key, conn
        self.status = conn.status
        self._released = False

    async def read(self) -> bytes:
        while not self.conn.complete:
            await self.conn.wait()
        body = b"".join(self.conn.body)
        self.conn.body.clear()
        return body

    async def lines(self) -> AsyncIterator[bytes]:
        """The body line by line, each with its b"\\n" (the last one may lack it)."""
        conn, pending = self.conn, b""
        while True:
            while conn.body:
                pending += conn.body.popleft()
            *full, pending = pending.split(b"\n")
            for line in full:
                yield line + b"\n"
            if conn.complete and not conn.body:
                if pending:
                    yield pending
                return
            await conn.wait()

    def release(self) -> None:
        """Back to the pool if the answer was read to its end, else closed (which also tells the
        server that nobody waits for it)."""
        if not self._released:
            self._released = True
            self.pool._give_back(self.key, self.conn)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.release()


class UpstreamPool:
    def __init__(
        self, connect_timeout_s: float, max_idle_per_server: int = 256, api_key: str | None = None
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        self.max_idle = max_idle_per_server
        self.idle: dict[tuple[str, int], list[_Connection]] = {}
        self._addresses: dict[str, tuple[str, int]] = {}

    def address(self, server_url: str) -> tuple[str, int]:
        if server_url not in self._addresses:
            parts = urlsplit(server_url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"worker URL {server_url!r}: the PD legs speak plain http://host:port")
            self._addresses[server_url] = (parts.hostname, parts.port or 80)
        return self._addresses[server_url]

    async def post(self, server_url: str, path: str, body: bytes) -> Response:
        key = self.address(server_url)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {key[0]}:{key[1]}\r\nContent-Type: application/json\r\n"
            f"{self.auth}Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        while True:
            conn, reused = self._take(key), True
            if conn is None:
                conn, reused = await self._connect(key), False
            conn.start()
            conn.transport.write(head + body)  # type: ignore[union-attr]
            try:
                while not conn.headers_done:
                    await conn.wait()
                return Response(self, key, conn)
            except (ConnectionError, OSError):
                conn.transport.close()  # type: ignore[union-attr]
                if reused and not conn.received:
                    continue  # a kept-alive connection the server had closed: again, on a new one
                raise
            except BaseException:
                conn.transport.close()  # type: ignore[union-attr]
                raise

    def _take(self, key: tuple[str, int]) -> _Connection | None:
        idle = self.idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self, key: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(_Connection, *key)
        except (OSError, TimeoutError) as err:
            raise Refused(f"http://{key[0]}:{key[1]} refused the connection: {err!r}") from err
        return conn

    def _give_back(self, key: tuple[str, int], conn: _Connection) -> None:
        idle = self.idle.setdefault(key, [])
        if conn.reusable and len(idle) < self.max_idle:
            idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    def close(self) -> None:
        for idle in self.idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self.idle.clear()

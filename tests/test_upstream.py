"""The PD legs' HTTP client against raw servers: keep-alive reuse, a kept-alive connection the
server closed, chunked SSE split at odd places, malformed answers, refused connections."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from router.upstream import Refused, UpstreamPool


async def _serve(handle: Callable) -> tuple[asyncio.Server, str, list[int]]:
    """A raw HTTP server; returns it, its URL, and a list of connection ids it accepted."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                if not await handle(body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", connections


async def _echo(body: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    return True


def test_answers_reuse_one_kept_alive_connection() -> None:
    async def body() -> None:
        server, url, connections = await _serve(_echo)
        pool = UpstreamPool(connect_timeout_s=2)
        for i in range(5):
            async with await pool.post(url, "/generate", b'{"i":%d}' % i) as resp:
                assert resp.status == 200 and await resp.read() == b'{"i":%d}' % i
        assert len(connections) == 1
        pool.close()
        server.close()

    asyncio.run(body())


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def once(body: bytes, writer: asyncio.StreamWriter) -> bool:
        await _echo(body, writer)
        return False  # then close, like a server's keep-alive timeout

    async def body() -> None:
        server, url, connections = await _serve(once)
        pool = UpstreamPool(connect_timeout_s=2)
        for _ in range(3):
            async with await pool.post(url, "/generate", b"{}") as resp:
                assert await resp.read() == b"{}"
            await asyncio.sleep(0.05)
        assert len(connections) == 3
        pool.close()
        server.close()

    asyncio.run(body())


def test_chunked_sse_comes_back_line_by_line() -> None:
    events = b'data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n'

    async def chunked(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(events), 7):  # chunks that cut lines anywhere
            piece = events[start : start + 7]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"0\r\n\r\n")
        return True

    async def body() -> None:
        server, url, _ = await _serve(chunked)
        pool = UpstreamPool(connect_timeout_s=2)
        async with await pool.post(url, "/generate", b"{}") as resp:
            lines = [line async for line in resp.lines()]
        assert b"".join(lines) == events and all(line.endswith(b"\n") for line in lines)
        assert [x for x in lines if x.startswith(b"data")][1] == b'data: {"a":2}\n'
        pool.close()
        server.close()

    asyncio.run(body())


def test_malformed_answers_and_dead_servers_raise() -> None:
    async def garbage(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SPLAT\r\n\r\n")
        return True

    async def hang_up(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        return False

    async def body() -> None:
        pool = UpstreamPool(connect_timeout_s=2)
        server, url, _ = await _serve(garbage)
        with pytest.raises(ConnectionError, match="malformed"):
            await pool.post(url, "/generate", b"{}")
        server.close()
        server, url, _ = await _serve(hang_up)
        resp = await pool.post(url, "/generate", b"{}")
        with pytest.raises(ConnectionError):
            await resp.read()
        resp.release()
        server.close()
        await server.wait_closed()
        with pytest.raises(Refused, match="refused"):
            await pool.post(url, "/generate", b"{}")
        with pytest.raises(ValueError, match="http://"):
            await pool.post("https://example.com", "/generate", b"{}")
        pool.close()

    asyncio.run(body())

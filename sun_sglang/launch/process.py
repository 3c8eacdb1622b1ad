"""Child processes started, watched and stopped by their PID (each in its own process group)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# Straight to the servers: a proxy from the environment (http_proxy) would stand in between.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(health_url: str, timeout_s: float = 2.0) -> bool:
    try:
        with _DIRECT.open(health_url, timeout=timeout_s) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


class ServerFailed(RuntimeError):
    """A server exited or did not become healthy in time."""


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # keys get logged
        with os.fdopen(fd, "ab") as log:
            # A new session: the server's own children (scheduler, detokenizer) share its group,
            # so one killpg stops them all.
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def healthy(self) -> bool:
        if self.health_url is None:
            return self.exit_code() is None
        return answers(self.health_url)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float = 15.0, signalled: bool = False) -> None:
        """SIGTERM the process group (once: a second SIGTERM may cut a graceful drain short),
        then SIGKILL what is left of the group after grace_s."""
        if self.popen is None:
            return
        if not signalled:
            self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        if _group_alive(self.popen.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            try:
                self.popen.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        self.popen.poll()


def stop_all(procs: list[ManagedProcess], grace_s: float = 15.0) -> None:
    """SIGTERM every process group at once, then stop each (SIGKILL after the shared grace)."""
    for proc in procs:
        proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        proc.stop(grace_s=max(0.5, deadline - time.monotonic()), signalled=True)


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port (another cluster, a stale server)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def wait_healthy(procs: list[ManagedProcess], timeout_s: float, poll_s: float = 1.0) -> dict[str, float]:
    """Block until every process answers its health check; return seconds to health per name.
    Raises ServerFailed naming the first server that exited or the ones still not healthy,
    with the tail of its log."""
    start = time.monotonic()
    pending = list(procs)
    ready: dict[str, float] = {}
    while pending:
        for proc in list(pending):
            code = proc.exit_code()
            if code is not None:
                raise ServerFailed(
                    f"{proc.name} exited with code {code} during start-up; "
                    f"log {proc.log_path}:\n{proc.log_tail()}"
                )
            if proc.healthy():
                pending.remove(proc)
                ready[proc.name] = time.monotonic() - start
        if not pending:
            break
        if time.monotonic() - start > timeout_s:
            slow = pending[0]
            raise ServerFailed(
                f"{', '.join(p.name for p in pending)} not healthy after {timeout_s:.0f} s; "
                f"log {slow.log_path}:\n{slow.log_tail()}"
            )
        time.sleep(poll_s)
    return ready


def wait_answering(health_urls: list[str], timeout_s: float, poll_s: float = 1.0) -> list[str]:
    """Wait for servers this launcher did not start (other hosts) to answer their health
    checks; return those still silent after timeout_s."""
    deadline = time.monotonic() + timeout_s
    pending = list(health_urls)
    while pending:
        pending = [url for url in pending if not answers(url)]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(poll_s)
    return pending


def refuses_key(url: str, key: str, timeout_s: float = 5.0) -> bool:
    """Does a server (SGLang with --api-key) refuse this key? Its /health is open to all, so a
    wrong key shows only on another endpoint."""
    req = urllib.request.Request(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with _DIRECT.open(req, timeout=timeout_s):
            return False
    except urllib.error.HTTPError as err:
        return err.code in (401, 403)
    except OSError:
        return False

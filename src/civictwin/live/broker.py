"""A local Eclipse Mosquitto broker that civictwin starts and stops itself (tests, demo, benchmark).

The broker listens on one loopback port, refuses anonymous clients (``allow_anonymous false``), knows
its accounts from a hashed password file written with ``mosquitto_passwd``, and limits each account to
its topics with an ACL file. It keeps sessions and queued messages across a restart
(``persistence true``; the in-memory database is saved on a clean stop and every
``autosave_interval`` seconds), so a consumer with a persistent session loses nothing while the broker
is stopped cleanly. Option meanings: ``man 5 mosquitto.conf`` (Mosquitto 2.0).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from civictwin.errors import CivicTwinError

_SBIN_PATHS = "/usr/sbin:/usr/local/sbin:/sbin"


class BrokerError(CivicTwinError):
    """Mosquitto is not installed, or it did not start (its log says why)."""


@dataclass(frozen=True)
class BrokerAccount:
    """One MQTT account: its credentials and the topic filters it may read and write (ACL)."""

    username: str
    password: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


def mosquitto_binaries() -> tuple[Path, Path]:
    """The ``mosquitto`` broker and ``mosquitto_passwd`` (Debian package ``mosquitto``)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), _SBIN_PATHS])
    broker, passwd = shutil.which("mosquitto", path=search), shutil.which("mosquitto_passwd", path=search)
    if broker is None or passwd is None:
        raise BrokerError("Eclipse Mosquitto is not installed (apt-get install mosquitto)")
    return Path(broker), Path(passwd)


def mosquitto_available() -> bool:
    """Whether the broker and its password tool are installed."""
    try:
        mosquitto_binaries()
    except BrokerError:
        return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Mosquitto:
    """One broker process in its own folder (config, password file, ACL, persistence, log).

    The port is chosen once, so a restarted broker is found where clients left it.
    """

    def __init__(
        self,
        folder: Path,
        *,
        accounts: Sequence[BrokerAccount],
        host: str = "127.0.0.1",
        port: int | None = None,
        max_queued_messages: int = 1_000_000,
        max_inflight_messages: int = 1_000,
        autosave_interval_s: int = 1,
    ) -> None:
        if not accounts:
            raise BrokerError("a broker needs at least one account")
        self.folder = folder
        self.accounts = tuple(accounts)
        self.host = host
        self.port = port or free_port(host)
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.autosave_interval_s = autosave_interval_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto.log"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_files(self) -> None:
        """Write the config, the hashed password file and the ACL into :attr:`folder`."""
        _, passwd = mosquitto_binaries()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "data").mkdir(exist_ok=True)
        password_file = self.folder / "passwd"
        password_file.unlink(missing_ok=True)
        password_file.touch(mode=0o600)
        for account in self.accounts:
            subprocess.run(
                [str(passwd), "-b", str(password_file), account.username, account.password],
                check=True,
                capture_output=True,
            )
        (self.folder / "acl").write_text(_acl(self.accounts), encoding="utf-8")
        self.config_path.write_text(self._config(), encoding="utf-8")

    def _config(self) -> str:
        return "\n".join(
            [
                f"user {getpass.getuser()}",
                f"listener {self.port} {self.host}",
                "allow_anonymous false",
                f"password_file {self.folder / 'passwd'}",
                f"acl_file {self.folder / 'acl'}",
                "persistence true",
                f"persistence_location {self.folder / 'data'}/",
                f"autosave_interval {self.autosave_interval_s}",
                f"max_queued_messages {self.max_queued_messages}",
                f"max_inflight_messages {self.max_inflight_messages}",
                "set_tcp_nodelay true",
                f"log_dest file {self.log_path}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "",
            ]
        )

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Start the broker (writing its files the first time) and wait until it accepts connections."""
        if self.running:
            return
        broker, _ = mosquitto_binaries()
        if not self.config_path.is_file():
            self.write_files()
        self._process = subprocess.Popen(
            [str(broker), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(f"mosquitto exited at start: {self._last_words()}", path=self.config_path)
            if _accepts(self.host, self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout_s} s")

    def _last_words(self) -> str:
        stderr = (
            self._process.stderr.read().decode(errors="replace")
            if self._process and self._process.stderr
            else ""
        )
        log = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        lines = [line for line in (stderr + log).splitlines() if line.strip()]
        return lines[-1] if lines else "no message"

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop the broker cleanly (SIGTERM: it saves its sessions and queues first)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._close()

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL): what a crash looks like to its clients."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close()

    def _close(self) -> None:
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def restart(self) -> None:
        """Stop cleanly and start again on the same port with the same persistence folder."""
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _acl(accounts: Sequence[BrokerAccount]) -> str:
    """The ACL file: each account may read and write only its own topic filters."""
    lines: list[str] = []
    for account in accounts:
        lines.append(f"user {account.username}")
        lines.extend(f"topic read {topic}" for topic in account.read)
        lines.extend(f"topic write {topic}" for topic in account.write)
        lines.append("")
    return "\n".join(lines)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False

"""Servers a fault test owns, so killing them disturbs nobody: a private ``redis-server``,
a private PostgreSQL cluster, a network namespace joined by a veth pair, a TCP proxy
that can stop forwarding.

All of them listen on loopback (or on the veth address, which exists only inside this
machine) and are torn down by the test that made them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from conftest import require_tool, unavailable
from procs import Proc, free_port, process_env, wait_until


# -- Redis -------------------------------------------------------------------------------------
class PrivateRedis:
    """``redis-server --port N --save "" --appendonly no`` that a test may kill and restart empty."""

    def __init__(self, log_dir: Path, *, bind: tuple[str, ...] = ("127.0.0.1",)):
        self.server = require_tool("redis-server")
        self.port = free_port()
        self.bind = bind
        self.log_dir = log_dir
        self.starts = 0
        self.run_id: str | None = None
        self.proc: Proc | None = None

    def url(self, host: str = "127.0.0.1") -> str:
        return f"redis://{host}:{self.port}/0"

    def start(self) -> None:
        import redis

        self.starts += 1
        self.proc = Proc([self.server, "--port", str(self.port), "--bind", *self.bind,
                          "--save", "", "--appendonly", "no", "--daemonize", "no",
                          # bound to a veth address (inside this machine) as well as loopback
                          "--protected-mode", "yes" if self.bind == ("127.0.0.1",) else "no"],
                         process_env(), self.log_dir / f"redis{self.starts}.log")
        client = redis.Redis(port=self.port)
        wait_until(lambda: client.ping(), timeout=10, message=f"redis-server on {self.port}")
        self.run_id = client.info("server")["run_id"]  # a new server process each start
        client.close()

    def kill(self) -> None:
        """SIGKILL: every message in it is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.popen.wait(10)
            self.proc.stop()
            self.proc = None

    def messages(self, queue: str) -> int:
        """Messages Dramatiq holds for ``queue`` (its ``.msgs`` hash: queued and unacked)."""
        import redis

        client = redis.Redis(port=self.port)
        try:
            return client.hlen(f"dramatiq:{queue}.msgs")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


# -- PostgreSQL --------------------------------------------------------------------------------
def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not found:
        unavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return found[-1]


class PrivateCluster:
    """A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) in a temp dir, trust auth,
    run as the ``postgres`` user when this process is root (PostgreSQL refuses root).

    ``stop()`` is ``pg_ctl stop -m immediate`` (every backend dies, as in a crash or a
    failover), ``start()`` brings it back on the same port with the same data.
    """

    def __init__(self, *, listen: tuple[str, ...] = ("127.0.0.1",), trust_net: str | None = None):
        self.bin = _pg_bin()
        self.port = free_port()
        self.listen = listen
        self.dir = Path(tempfile.mkdtemp(prefix="tj-chaos-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "pg.log"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '{','.join(listen)}'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.dir}'\nfsync = off\n"
                       "max_connections = 200\n")
        if trust_net:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"\nhost all all {trust_net} trust\n")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [f"{self.bin}/{tool}", *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=120)

    def url(self, dbname: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{dbname}"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop",
                  check=False)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def terminate_backends(admin_url: str, dbname: str) -> int:
    """``pg_terminate_backend`` every connection to ``dbname`` (what a failover does to them)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchall()
    return len(rows)


# -- a network namespace on a veth pair --------------------------------------------------------
class Netns:
    """``ip netns add`` + a veth pair: the host end ``host_ip``, the namespace end ``ns_ip``.

    ``cut()`` sets the host end down (packets are dropped, nothing is reset: a partition),
    ``heal()`` sets it up again. Needs root and iproute2; skips otherwise.
    """

    def __init__(self):
        if os.geteuid() != 0:
            unavailable("the partition test needs root and iproute2 (ip netns, veth)")
        require_tool("ip", "the partition test needs root and iproute2 (ip netns, veth)")
        tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.name = f"tjchaos{tag}"
        self.host_if = f"tjh{tag}"
        self.ns_if = f"tjn{tag}"
        octet = random.randrange(16, 250)
        self.host_ip = f"10.{octet}.{random.randrange(256)}.1"
        self.ns_ip = self.host_ip[:-1] + "2"
        self.net = self.host_ip[:-1] + "0/30"
        self._made = False
        try:
            self._ip("netns", "add", self.name)
            self._made = True
            self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            self._ip("link", "set", self.ns_if, "netns", self.name)
            self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            self._ip("link", "set", self.host_if, "up")
            self.exec_ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
            self.exec_ip("link", "set", self.ns_if, "up")
            self.exec_ip("link", "set", "lo", "up")
        except subprocess.CalledProcessError as exc:
            self.destroy()
            unavailable(f"could not build a network namespace: {exc.stdout!r}")

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def exec_ip(self, *args: str) -> None:
        self._ip("netns", "exec", self.name, "ip", *args)

    def prefix(self) -> list[str]:
        """Prepend to a command to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        self._ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        self._ip("link", "set", self.host_if, "up")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ip("link", "del", self.host_if)
        if self._made:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._ip("netns", "del", self.name)


# -- a TCP proxy that can hold ------------------------------------------------------------------
class HoldingProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; while ``hold`` is set it forwards nothing
    from clients (their bytes are dropped, they wait for answers that never come).

    R5 points only the web process's Redis at it: the intake commits its events, then blocks
    sending their wake-ups, and the test SIGKILLs it right there.
    """

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.hold = threading.Event()
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="holding-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        socks = [client, upstream]
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(socks, [], [], 0.2)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is client:
                        if not self.hold.is_set():
                            upstream.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


def wait_port(host: str, port: int, timeout: float = 30) -> None:
    def up():
        with socket.create_connection((host, port), timeout=1):
            return True

    wait_until(up, timeout=timeout, interval=0.1, message=f"{host}:{port} to accept connections")


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)

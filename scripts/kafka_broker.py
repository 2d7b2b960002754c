#!/usr/bin/env python3
"""Run a real Apache Kafka broker (KRaft, one node, loopback only) from Maven Central jars.

Standard library only, so it works before the project is installed. The Kafka
version is the one pinned in ``scripts/kafka/pom.xml``; its jars are resolved
with Maven into ``$STREAMML_KAFKA_CACHE`` (default
``~/.cache/streamml/kafka-<version>``) and reused afterwards.

Command line::

    python scripts/kafka_broker.py fetch                  # resolve the jars (cached)
    python scripts/kafka_broker.py start --dir DIR [--port PORT]
    python scripts/kafka_broker.py status --dir DIR
    python scripts/kafka_broker.py stop --dir DIR

``start`` returns once the broker answers a Metadata request listing itself and
prints ``127.0.0.1:PORT`` as its last stdout line. From Python::

    broker = start_broker(tmpdir)   # Broker(bootstrap="127.0.0.1:PORT", ...)
    broker.stop()
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka" / "pom.xml"
HOST = "127.0.0.1"
PID_FILE = "broker.pid"
PORT_FILE = "broker.port"
JAVA_HEAP = ("-Xms128m", "-Xmx512m")


class BrokerError(RuntimeError):
    """The broker could not be fetched, started or stopped."""


def kafka_version() -> str:
    """The Kafka version pinned in ``scripts/kafka/pom.xml``."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text("utf-8"))
    if not match:
        raise BrokerError(f"no <kafka.version> in {POM}")
    return match.group(1).strip()


def cache_dir() -> Path:
    """Where the jars live: ``$STREAMML_KAFKA_CACHE`` or ``~/.cache/streamml/kafka-<v>``."""
    env = os.environ.get("STREAMML_KAFKA_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "streamml" / f"kafka-{kafka_version()}"


def fetch(quiet: bool = False) -> Path:
    """Resolve the broker's jars with Maven (once) and return the ``libs`` directory."""
    libs = cache_dir() / "libs"
    if (libs / ".complete").is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not installed: run scripts/install-system-deps.sh")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]  # fmt: skip
    if not quiet:
        print(f"resolving Apache Kafka {kafka_version()} jars into {libs}", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not list(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        tail = (proc.stdout + proc.stderr).strip()[-2000:]
        raise BrokerError(f"mvn dependency:copy-dependencies failed:\n{tail}")
    (staging / ".complete").write_text(kafka_version() + "\n")
    try:
        staging.rename(libs)
    except OSError:  # another process won the race, or a stale incomplete dir
        if (libs / ".complete").is_file():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.rmtree(libs, ignore_errors=True)
            staging.rename(libs)
    return libs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --- readiness probe: a Kafka Metadata v1 request over a plain socket -------------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def broker_count(port: int, host: str = HOST, timeout_s: float = 2.0) -> int:
    """Number of live brokers a Metadata v1 request to ``host:port`` reports."""
    client_id = b"streamml-probe"
    # header: api_key=3 (Metadata), api_version=1, correlation_id, client_id;
    # body: topics = null (-1) -> no topic details needed.
    body = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id + struct.pack(">i", -1)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        payload = _recv_exact(sock, size)
    correlation_id, brokers = struct.unpack(">ii", payload[:8])
    if correlation_id != 7:
        raise ConnectionError("unexpected correlation id")
    return int(brokers)


# --- starting and stopping -------------------------------------------------------------


SERVER_PROPERTIES = """\
# Written by scripts/kafka_broker.py: a single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.network.threads=2
num.io.threads=4
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
# Make retention and compaction observable within seconds in tests.
log.retention.check.interval.ms=1000
log.segment.delete.delay.ms=1000
log.cleaner.backoff.ms=1000
"""

LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""


@dataclass
class Broker:
    """A running broker started by :func:`start_broker`."""

    bootstrap: str
    dir: Path
    pid: int
    startup_s: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL."""
        stop_broker(self.dir, timeout_s=timeout_s, proc=self._proc)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: SIGTERM the broker if the process that started it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("no Java runtime (java) found: run scripts/install-system-deps.sh")
    return java


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_broker(
    dir: str | os.PathLike[str],
    port: int = 0,
    *,
    timeout_s: float = 90.0,
    die_with_parent: bool = False,
) -> Broker:
    """Format KRaft storage in ``dir`` and start a broker; return once it serves requests.

    ``port=0`` picks free ports (retrying if another process grabs one first).
    ``die_with_parent`` ties the broker's life to this process (used by tests).
    """
    attempts = 3 if port == 0 else 1
    for attempt in range(attempts):
        try:
            return _start_once(Path(dir), port or free_port(), timeout_s, die_with_parent)
        except _PortTaken:
            if attempt == attempts - 1:
                raise BrokerError("could not bind free ports for the broker") from None
    raise AssertionError("unreachable")


class _PortTaken(BrokerError):
    pass


def _start_once(root: Path, port: int, timeout_s: float, die_with_parent: bool) -> Broker:
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    if read_pid(root) is not None:
        raise BrokerError(f"a broker is already running in {root} (pid file {PID_FILE})")
    libs = fetch(quiet=True)
    java = _java()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    data, logs = root / "data", root / "logs"
    shutil.rmtree(data, ignore_errors=True)
    logs.mkdir(exist_ok=True)
    props = root / "server.properties"
    props.write_text(
        SERVER_PROPERTIES.format(host=HOST, port=port, controller_port=controller_port, data=data)
    )
    log4j = root / "log4j.properties"
    log4j.write_text(LOG4J_PROPERTIES.format(log=logs / "server.log"))
    base = [
        java, *JAVA_HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}", f"-Dkafka.logs.dir={logs}",
        "-cp", str(libs / "*"),
    ]  # fmt: skip
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    fmt = subprocess.run(
        [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        raise BrokerError(f"kafka-storage format failed:\n{(fmt.stdout + fmt.stderr)[-2000:]}")
    out_path = logs / "broker.out"
    started = time.monotonic()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [*base, "kafka.Kafka", str(props)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
    (root / PID_FILE).write_text(f"{proc.pid}\n")
    (root / PORT_FILE).write_text(f"{port}\n")
    deadline = started + timeout_s
    while True:
        if proc.poll() is not None:
            _forget(root)
            text = _log_tail(out_path) + "\n" + _log_tail(logs / "server.log")
            if "Address already in use" in text or "BindException" in text:
                raise _PortTaken(text)
            raise BrokerError(f"broker exited with code {proc.returncode}:\n{text}")
        with contextlib.suppress(OSError, struct.error):
            if broker_count(port) >= 1:
                break
        if time.monotonic() > deadline:
            stop_broker(root, proc=proc)
            raise BrokerError(
                f"broker did not become ready within {timeout_s:.0f}s; see {logs}/server.log"
            )
        time.sleep(0.2)
    return Broker(f"{HOST}:{port}", root, proc.pid, time.monotonic() - started, proc)


def _forget(root: Path) -> None:
    for name in (PID_FILE, PORT_FILE):
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def read_pid(root: str | os.PathLike[str]) -> int | None:
    """The pid of the broker running in ``root``, or ``None`` (stale pid files are ignored)."""
    path = Path(root) / PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    with contextlib.suppress(OSError):  # guard against a recycled pid
        if b"kafka.Kafka" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    return pid


def stop_broker(
    root: str | os.PathLike[str],
    timeout_s: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> bool:
    """Stop the broker running in ``root``; return ``False`` if none was running."""
    root = Path(root)
    pid = proc.pid if proc is not None and proc.poll() is None else read_pid(root)
    if pid is None:
        _forget(root)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (proc.poll() is not None) if proc is not None else not _alive(pid):
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait(10)
    _forget(root)
    return True


def status(root: str | os.PathLike[str]) -> str | None:
    """``host:port`` of the broker running in ``root`` if it answers, else ``None``."""
    pid = read_pid(root)
    if pid is None:
        return None
    try:
        port = int((Path(root) / PORT_FILE).read_text().strip())
        return f"{HOST}:{port}" if broker_count(port) >= 1 else None
    except (OSError, ValueError, struct.error):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="resolve the pinned Kafka jars from Maven Central (cached)")
    sub.add_parser("version", help="print the pinned Kafka version")
    start = sub.add_parser("start", help="start a broker in the background")
    start.add_argument("--dir", required=True, help="working directory (data, logs, pid file)")
    start.add_argument("--port", type=int, default=0, help="listener port (0: pick a free one)")
    start.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for ready")
    for name in ("stop", "status"):
        sub.add_parser(name).add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "version":
            print(kafka_version())
        elif args.command == "fetch":
            print(fetch())
        elif args.command == "start":
            broker = start_broker(args.dir, args.port, timeout_s=args.timeout)
            print(f"kafka {kafka_version()} pid {broker.pid} ready in {broker.startup_s:.1f}s")
            print(broker.bootstrap)
        elif args.command == "stop":
            print("stopped" if stop_broker(args.dir) else "not running")
        else:
            bootstrap = status(args.dir)
            print(f"running {bootstrap}" if bootstrap else "not running")
            return 0 if bootstrap else 1
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real single-node Kafka broker (KRaft) for development and tests, no Docker.

Kafka comes from Maven Central: ``scripts/kafka/pom.xml`` depends on
``org.apache.kafka:kafka_2.13`` plus an slf4j binding, Maven copies every
runtime jar into a cache folder once, and the broker runs as
``java -cp '<libs>/*' kafka.Kafka server.properties`` with the broker and the
KRaft controller in one JVM on free loopback ports.

Command line (any Python 3.11; ``start`` and ``run`` also need confluent-kafka)::

    python scripts/kafka_broker.py fetch            # resolve the jars once
    python scripts/kafka_broker.py start --dir D    # start in the background
    python scripts/kafka_broker.py stop --dir D     # SIGTERM, SIGKILL on timeout
    python scripts/kafka_broker.py run --dir D      # foreground, logs to the terminal

``start`` prints the bootstrap address and writes ``D/broker.json``
(``{"pid": ..., "bootstrap": "127.0.0.1:PORT"}``); the broker log is
``D/broker.log``. Starting again on a folder that holds a stopped broker keeps
its topics and ports.

Python::

    with start_broker(tmp_dir) as broker:
        use(broker.bootstrap)

Jars are cached in ``~/.cache/shopguard/kafka/<version>/libs``; the
environment variable ``SHOPGUARD_KAFKA_CACHE`` replaces
``~/.cache/shopguard/kafka``. Needs Java 17+ always and Maven only while the
cache is empty.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

POM_PATH = Path(__file__).resolve().parent / "kafka" / "pom.xml"
CACHE_ENV_VAR = "SHOPGUARD_KAFKA_CACHE"
DEFAULT_CACHE_ROOT = Path.home() / ".cache" / "shopguard" / "kafka"
MIN_JAVA_MAJOR = 17  # Kafka 4.x brokers need Java 17
# A small heap and the serial collector: fewer threads and less memory on a
# 2-core CI machine; a test broker has no pause-time goals.
JVM_OPTIONS = ("-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 30
NODE_ID = 1

# Kafka logs through slf4j -> log4j2; everything goes to the JVM's stdout,
# which `start` sends to D/broker.log and `run` leaves on the terminal.
# log4j's own shutdown hook is off so that Kafka's shutdown is logged to the
# end; the config dumps (hundreds of lines per start) are left out.
LOG4J2_PROPERTIES = """\
shutdownHook = disable
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = stdout
appender.stdout.type = Console
appender.stdout.name = stdout
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class KafkaBrokerError(RuntimeError):
    """A problem the user can fix; the message says how."""


# ---------------------------------------------------------------- tools


def find_java() -> str:
    """The java executable (JAVA_HOME first), checked to be Java 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home, "bin", "java")) if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        where = f"at $JAVA_HOME/bin/java ({java})" if java_home else "on PATH"
        raise KafkaBrokerError(
            f"java not found {where}: install OpenJDK 17 "
            "(apt-get install openjdk-17-jre-headless) or set JAVA_HOME to a JDK 17+"
        )
    major = java_major_version(java)
    if major < MIN_JAVA_MAJOR:
        raise KafkaBrokerError(
            f"{java} is Java {major}; Kafka 4 needs Java {MIN_JAVA_MAJOR}+: "
            "install OpenJDK 17 (apt-get install openjdk-17-jre-headless) "
            "and put it first on PATH or in JAVA_HOME"
        )
    return java


def java_major_version(java: str) -> int:
    """17 for 'openjdk version "17.0.15"', 8 for '"1.8.0_392"'."""
    result = subprocess.run([java, "-version"], capture_output=True, text=True)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        raise KafkaBrokerError(f"cannot tell the version of {java}: {result.stderr.strip()}")
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return minor if major == 1 else major


def find_mvn() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaBrokerError(
            "mvn not found: it is needed once to download the Kafka jars; "
            "install Maven (apt-get install maven), or point "
            f"{CACHE_ENV_VAR} at a cache that already holds them"
        )
    return mvn


# ---------------------------------------------------------------- jars


def kafka_version(pom_path: Path = POM_PATH) -> str:
    """The kafka.version property of the pom: the one place it is set."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ElementTree.parse(pom_path).find("m:properties/m:kafka.version", namespace)
    if version is None or not (version.text or "").strip():
        raise KafkaBrokerError(f"{pom_path} has no <kafka.version> property")
    return version.text.strip()


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_ROOT).expanduser()


def libs_dir(pom_path: Path = POM_PATH) -> Path:
    return cache_root() / kafka_version(pom_path) / "libs"


def fetch_jars(pom_path: Path = POM_PATH) -> Path:
    """Every runtime jar of the pom in the cache; returns the libs folder.

    A marker file holding the pom's hash makes a second call instant and a
    changed pom fetch again. Maven writes into a scratch folder that is renamed
    into place only when complete, so an interrupted fetch is never mistaken
    for a cached one; a file lock keeps parallel test runs from racing.
    """
    libs = libs_dir(pom_path)
    pom_hash = hashlib.sha256(pom_path.read_bytes()).hexdigest()
    if _is_complete(libs, pom_hash):
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(libs.parent / "fetch.lock"):
        if _is_complete(libs, pom_hash):  # another process fetched meanwhile
            return libs
        scratch = libs.with_name("libs.partial")
        shutil.rmtree(scratch, ignore_errors=True)
        _copy_dependencies(pom_path, scratch)
        (scratch / ".complete").write_text(pom_hash)
        shutil.rmtree(libs, ignore_errors=True)
        scratch.rename(libs)
    return libs


def _is_complete(libs: Path, pom_hash: str) -> bool:
    marker = libs / ".complete"
    return marker.is_file() and marker.read_text().strip() == pom_hash


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _copy_dependencies(pom_path: Path, output_dir: Path) -> None:
    command = [
        find_mvn(), "-q", "-B", "-Dstyle.color=never",
        "-f", str(pom_path), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={output_dir}",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not any(output_dir.glob("kafka_2.13-*.jar")):
        raise KafkaBrokerError(
            "Maven could not fetch the Kafka jars (is Maven Central reachable?).\n"
            f"command: {' '.join(command)}\n{result.stdout}{result.stderr}"
        )


# ---------------------------------------------------------------- config


@dataclass(frozen=True)
class BrokerLayout:
    """Where one broker keeps its files, all under one folder."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def server_properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def log(self) -> Path:
        return self.root / "broker.log"

    @property
    def state_file(self) -> Path:
        return self.root / "broker.json"

    def is_formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()


def free_loopback_ports(count: int) -> list[int]:
    """Distinct free ports, picked by the OS. Kafka binds them a moment later;
    the sockets stay open until all are picked so no port is handed out twice."""
    with contextlib.ExitStack() as sockets:
        probes = [sockets.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def new_cluster_id() -> str:
    """A random Kafka Uuid string (22 chars of url-safe base64), as StorageTool
    random-uuid prints, without paying for a JVM start."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka rejects ids that look like options
            return text


def server_properties(data_dir: Path, broker_port: int, controller_port: int) -> str:
    """One node that is broker and controller, tuned to start fast and to
    support transactions with a single replica."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": NODE_ID,
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": data_dir,
        "num.partitions": 1,
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        # Internal topics: one replica (there is one broker) and one partition
        # (creating 50 on first use is slow).
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        # The default 128 MiB compaction buffer is a quarter of our heap.
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
        # Keep every message: simulated streams are stamped with their event times (November 2026,
        # weeks in the past), and the default 7-day retention deletes them at its next check, five
        # minutes in (a stamped benchmark run read 217,877 of 498,439 events).
        "log.retention.ms": -1,
        "num.network.threads": 2,
        "num.io.threads": 4,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def write_fresh_config(layout: BrokerLayout) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    text = server_properties(layout.data_dir, *free_loopback_ports(2))
    layout.server_properties.write_text(text)
    layout.log4j_config.write_text(LOG4J2_PROPERTIES)


def configured_ports(layout: BrokerLayout) -> tuple[int, int]:
    """(broker port, controller port) from an existing server.properties."""
    text = layout.server_properties.read_text()
    broker = re.search(r"^listeners=PLAINTEXT://127\.0\.0\.1:(\d+)", text, re.M)
    controller = re.search(r"CONTROLLER://127\.0\.0\.1:(\d+)", text)
    if not (broker and controller):
        raise KafkaBrokerError(f"cannot read the ports from {layout.server_properties}")
    return int(broker.group(1)), int(controller.group(1))


# ---------------------------------------------------------------- process


def java_command(java: str, libs: Path, layout: BrokerLayout, main_class: str, *args: str) -> list[str]:
    return [
        java, *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={layout.log4j_config}",
        "-cp", f"{libs}/*",
        main_class, *args,
    ]


def format_storage(java: str, libs: Path, layout: BrokerLayout) -> None:
    command = java_command(
        java, libs, layout, "kafka.tools.StorageTool", "format",
        "-t", new_cluster_id(), "-c", str(layout.server_properties),
    )
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:]
        raise KafkaBrokerError(
            f"formatting Kafka storage in {layout.data_dir} failed:\n" + "\n".join(output)
        )


def tie_to_parent_prefix() -> list[str]:
    # setpriv (util-linux) sets the "parent death signal" and then execs java,
    # so a broker started by a test run dies with it even after a SIGKILL.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "SIGTERM"] if setpriv else []


def launch(command: list[str], log: Path | None) -> subprocess.Popen:
    """Start the JVM with its output appended to `log`, or on the terminal.

    A logging (background) broker gets a session of its own, so Ctrl-C in the
    terminal reaches only its owner, which then stops it in order.
    """
    if log is None:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL)
    with open(log, "ab") as output:  # the child keeps its own descriptor
        # The log is appended to across restarts: mark where this one begins.
        output.write(f"--- kafka_broker.py: starting Kafka, {time.ctime()} ---\n".encode())
        output.flush()
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )


def wait_until_ready(
    process: subprocess.Popen, bootstrap: str, timeout_s: float, log: Path | None
) -> None:
    """Return when the broker answers a metadata request; raise with the log
    tail if it exits or does not answer within timeout_s."""
    deadline = time.monotonic() + timeout_s
    host, port = bootstrap.rsplit(":", 1)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise KafkaBrokerError(
                f"the Kafka broker exited with code {process.returncode} while starting.\n"
                + log_tail_message(log)
            )
        # A plain TCP probe first: quiet, and cheaper than a Kafka client.
        if _accepts_connections(host, int(port)) and _answers_metadata(bootstrap):
            return
        time.sleep(0.1)
    raise KafkaBrokerError(
        f"the Kafka broker did not come up within {timeout_s:g} s.\n" + log_tail_message(log)
    )


def _accepts_connections(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _answers_metadata(bootstrap: str) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=2).brokers)
    except KafkaException:
        return False


def log_tail_message(log: Path | None) -> str:
    if log is None:
        return "(the broker log is above, on the terminal)"
    if not log.is_file():
        return f"(no broker log at {log})"
    lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return f"last {len(lines)} lines of {log}:\n" + "\n".join(lines)


def is_broker_process(pid: int, layout: BrokerLayout) -> bool:
    """True if pid is alive and is the broker of this folder (not a reused pid)."""
    if not Path("/proc/self").is_dir():  # not Linux: "alive" is all we can tell
        return _pid_alive(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "kafka.Kafka" in cmdline and str(layout.server_properties) in cmdline


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def terminate_pid(pid: int, layout: BrokerLayout, timeout_s: float) -> None:
    """SIGTERM (Kafka shuts down cleanly), then SIGKILL after timeout_s."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while is_broker_process(pid, layout) and time.monotonic() < deadline:
        time.sleep(0.1)
    if is_broker_process(pid, layout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- broker


@dataclass
class Broker:
    """A running broker; stop() or leave the `with` block to stop it."""

    dir: Path
    bootstrap: str
    pid: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return BrokerLayout(self.dir).log

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        layout = BrokerLayout(self.dir)
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        else:
            terminate_pid(self.pid, layout, timeout_s)
        layout.state_file.unlink(missing_ok=True)

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_broker(
    dir: str | os.PathLike,
    *,
    timeout_s: float = START_TIMEOUT_S,
    log_to_terminal: bool = False,
    tie_to_parent: bool = True,
) -> Broker:
    """Start a broker whose files all live in `dir` and wait until it answers.

    A folder with a stopped broker is reused (topics and ports kept); a
    folder with a running one is refused. With tie_to_parent the broker gets
    SIGTERM when the calling thread's process exits, so tests leak no JVM.
    """
    layout = BrokerLayout(Path(dir).resolve())
    running = read_running_broker(layout)
    if running:
        raise KafkaBrokerError(
            f"a broker is already running from {layout.root} (pid {running.pid}, "
            f"{running.bootstrap}): use it, or `stop --dir {layout.root}` first"
        )
    java = find_java()
    libs = fetch_jars()
    if not layout.is_formatted():
        write_fresh_config(layout)
        format_storage(java, libs, layout)
    broker_port, _ = configured_ports(layout)
    bootstrap = f"127.0.0.1:{broker_port}"
    _require_free_ports(layout)

    command = java_command(java, libs, layout, "kafka.Kafka", str(layout.server_properties))
    if tie_to_parent:
        command = tie_to_parent_prefix() + command
    log = None if log_to_terminal else layout.log
    process = launch(command, log)
    try:
        wait_until_ready(process, bootstrap, timeout_s, log)
    except BaseException:
        _kill_quietly(process)
        raise
    layout.state_file.write_text(json.dumps({"pid": process.pid, "bootstrap": bootstrap}) + "\n")
    broker = Broker(layout.root, bootstrap, process.pid, process)
    return broker


def _require_free_ports(layout: BrokerLayout) -> None:
    for port in configured_ports(layout):
        if _accepts_connections("127.0.0.1", port):
            raise KafkaBrokerError(
                f"port {port} from {layout.server_properties} is taken by another program: "
                f"stop it, or delete {layout.root} (its topics go too) to get new ports"
            )


def _kill_quietly(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def read_running_broker(layout: BrokerLayout) -> Broker | None:
    """The broker recorded in dir/broker.json, if it is still running."""
    try:
        state = json.loads(layout.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not is_broker_process(state["pid"], layout):
        return None
    return Broker(layout.root, state["bootstrap"], state["pid"])


def stop_broker(dir: str | os.PathLike, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the broker started from `dir`; False if none was running."""
    layout = BrokerLayout(Path(dir).resolve())
    broker = read_running_broker(layout)
    layout.state_file.unlink(missing_ok=True)
    if broker is None:
        return False
    broker.stop(timeout_s)
    return True


# ---------------------------------------------------------------- command line


def run_in_foreground(dir: Path, timeout_s: float) -> int:
    # SIGTERM (e.g. from `stop` or a process manager) unwinds like Ctrl-C,
    # so the broker is stopped and broker.json removed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    broker = start_broker(dir, timeout_s=timeout_s, log_to_terminal=True, tie_to_parent=True)
    print(f"Kafka is up at {broker.bootstrap} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    try:
        return broker.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="download the Kafka jars into the cache (once)")
    for name, text in (
        ("start", "start a broker in the background and print its bootstrap address"),
        ("run", "run a broker in the foreground until Ctrl-C"),
        ("stop", "stop the broker started from --dir"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--dir", type=Path, required=True, help="the broker's folder")
        command.add_argument(
            "--timeout", type=float,
            default=STOP_TIMEOUT_S if name == "stop" else START_TIMEOUT_S,
            help="seconds to wait (default: %(default)s)",
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch_jars())
        elif args.command == "start":
            print(start_broker(args.dir, timeout_s=args.timeout, tie_to_parent=False).bootstrap)
        elif args.command == "run":
            return run_in_foreground(args.dir, args.timeout)
        elif args.command == "stop":
            if not stop_broker(args.dir, args.timeout):
                print(f"no broker running from {args.dir}", file=sys.stderr)
    except KafkaBrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

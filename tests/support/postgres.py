"""A throwaway PostgreSQL server for the test suite, started from the machine's binaries.

It listens on 127.0.0.1 on a free port, with its data in a temporary directory, and
is stopped at the end of the session. PostgreSQL refuses to run as root, so under
root (CI) it runs as the unprivileged `postgres` system user.

`SharedPostgresServer` is a server started outside the test run instead (see
SHARED_ENV).

With `tls=` it is shaped like a managed PostgreSQL: over TCP it accepts only TLS
connections with a password (SCRAM), using the given server certificate; the tests
administer it through its Unix socket.
"""

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2

from tests.support.tls import ServerCertificate

DEBIAN_ROOT = "/usr/lib/postgresql"


def find_bindir() -> Path | None:
    """The directory of initdb/pg_ctl: $PG_BINDIR, the newest Debian install, or PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(
        (p for p in Path(DEBIAN_ROOT).glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def remove_in_background(root: Path) -> None:
    """Delete a server's data directory without waiting: a session's databases are
    hundreds of thousands of files, minutes of unlinking at the end of a run. The
    shell starts `rm` in the background and exits, leaving nothing to wait for."""
    subprocess.run(
        ["sh", "-c", 'rm -rf -- "$1" &', "sh", str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        start_new_session=True,
    )


# Over TCP: TLS and a password, as a managed PostgreSQL; the Unix socket is for the tests.
TLS_ONLY_HBA = """\
local     all all                trust
hostssl   all all 127.0.0.1/32   scram-sha-256
hostnossl all all 127.0.0.1/32   reject
"""


class PostgresServer:
    def __init__(
        self,
        bindir: Path,
        *,
        settings: dict[str, str] | None = None,
        tls: ServerCertificate | None = None,
    ) -> None:
        self.bindir = bindir
        self.settings = dict(settings or {})
        self.tls = tls
        self.password = secrets.token_urlsafe(12) if tls else None
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="snapshotter-pg-"))
        self.datadir = self.root / "data"
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._give_to_server(self.root)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        if self.tls is not None:
            self._require_tls(self.tls)
        self.resume()
        if self.password is not None:
            self._execute(f"ALTER ROLE {self.user} PASSWORD '{self.password}'")

    def _give_to_server(self, path: Path) -> None:
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _require_tls(self, tls: ServerCertificate) -> None:
        """ssl=on with the given certificate, and TLS_ONLY_HBA. The key must belong
        to the server's user with mode 0600, or PostgreSQL refuses to start."""
        directory = self.root / "tls"
        directory.mkdir()
        cert, key = directory / "server.crt", directory / "server.key"
        shutil.copyfile(tls.cert, cert)
        shutil.copyfile(tls.key, key)
        key.chmod(0o600)
        for path in (directory, cert, key):
            self._give_to_server(path)
        (self.datadir / "pg_hba.conf").write_text(TLS_ONLY_HBA)
        self.settings.update(ssl="on", ssl_cert_file=str(cert), ssl_key_file=str(key))

    def _options(self) -> str:
        return (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        ) + "".join(f" -c {key}={value}" for key, value in self.settings.items())

    def pause(self) -> None:
        """Stop the server but keep its data: `resume()` starts it again, same port."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the (initialised) server and wait until it accepts connections."""
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            self._options(),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"
            )
        remove_in_background(self.root)

    def url(self, database: str = "postgres") -> str:
        login = f"{self.user}:{self.password}" if self.password else self.user
        return f"postgresql+psycopg2://{login}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        host = self.root if self.tls else "127.0.0.1"  # a TLS server: its Unix socket
        return f"host={host} port={self.port} user={self.user} dbname={database}"

    def _execute(self, statement: str) -> None:
        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def create_database(self, name: str, *, template: str | None = None) -> str:
        clause = f" TEMPLATE {template}" if template else ""
        self._execute(f'CREATE DATABASE "{name}"{clause}')
        return self.url(name)


# A server started outside the test run, shared by successive runs (a mutation run
# starts one test run per mutant): `host:port`, user postgres, trust authentication.
# hack/test_postgres.py starts one and prints the value.
SHARED_ENV = "TEST_SHARED_POSTGRES"


class SharedPostgresServer(PostgresServer):
    """A running server the tests only create and drop databases on.

    Several test runs may use it one after another or at once, so the databases of
    one run have names of their own and are dropped when their test ends; the
    migrated template is kept, one per version of the migrations."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.user, self.password, self.tls = "postgres", None, None
        self.settings = {}
        self.root = Path(tempfile.gettempdir())

    def start(self) -> None:
        self._execute("SELECT 1")  # reachable, or fail early

    def stop(self) -> None:
        """Not the tests' to stop."""

    def pause(self) -> None:
        raise RuntimeError(f"a shared test server ({SHARED_ENV}) is not the tests' to stop")

    def resume(self) -> None:
        self.pause()

    def dsn(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def drop_database(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def has_database(self, name: str) -> bool:
        conn = psycopg2.connect(self.dsn())
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                return cur.fetchone() is not None
        finally:
            conn.close()

    @contextlib.contextmanager
    def exclusive(self, key: int) -> Iterator[None]:
        """One test run at a time in the block (a session-level advisory lock)."""
        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (key,))
            yield
        finally:
            conn.close()  # releases the lock


def shared_server() -> SharedPostgresServer | None:
    address = os.environ.get(SHARED_ENV)
    return SharedPostgresServer(address) if address else None

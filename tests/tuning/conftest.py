"""A real PostgreSQL server for the tuning tests, from the Debian ``postgresql`` package.

:func:`postgres_url` makes a throwaway cluster in a temporary folder (``initdb``), starts it on
a free port of 127.0.0.1 (``pg_ctl start``), creates a database, and yields its
``postgresql+psycopg://`` URL; the server is stopped and the folder removed afterwards, also
when a test fails. ``initdb`` refuses to run as root: as root the server runs as the
``postgres`` system user (made by the Debian package), through ``runuser`` (or ``su``).

Without the binaries the tests are skipped, except on CI (``CI`` set, as ``CI=true``), where
that is a failure: CI installs the package (``.ci/run``), and a skip would hide a broken CI.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

#: The database the fixture creates in its cluster.
DATABASE = "fmicl_tune"

#: The system user that runs the server when the tests run as root.
SERVER_USER = "postgres"

#: Seconds to wait for the server to start, to accept connections and to stop.
START_SECONDS = 60


def on_ci() -> bool:
    """Whether the tests run on CI (``CI`` set to anything but empty, 0, false or no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it on CI, where PostgreSQL must be installed."""
    if on_ci():
        pytest.fail(f"{reason} (CI is set: .ci/run installs Debian's postgresql)", pytrace=False)
    pytest.skip(f"{reason}; install it with: apt-get install postgresql")


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: on the PATH, else Debian's
    ``/usr/lib/postgresql/<version>/bin`` (the newest)."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        folder = Path(on_path).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [p for p in found if (p / "pg_ctl").exists()]

    def version(folder: Path) -> tuple[int, ...]:
        name = folder.parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    return max(found, key=version) if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def traversable(folder: Path) -> bool:
    """Whether every user can reach into ``folder`` (it and its parents are o+x)."""
    folder = folder.resolve()
    return all(os.stat(p).st_mode & 0o001 for p in (folder, *folder.parents))


class Server:
    """One throwaway cluster in ``base`` (``data/``, ``sock/``, ``server.log``)."""

    def __init__(self, bin_dir: Path, base: Path, as_user: str | None) -> None:
        self.bin_dir, self.base, self.as_user = bin_dir, base, as_user
        self.data, self.sock, self.log = base / "data", base / "sock", base / "server.log"
        self.port = 0

    def command(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / tool), *args]
        if self.as_user is None:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", self.as_user, "--", *argv]
        return ["su", self.as_user, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(tool, *args),
            capture_output=True,
            text=True,
            timeout=START_SECONDS + 30,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} exited with {done.returncode}:\n"
                f"{done.stdout}\n{done.stderr}\n{self.log_tail()}"
            )
        return done

    def log_tail(self) -> str:
        try:
            return "server log:\n" + self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no server log)"

    def init(self) -> None:
        self.sock.mkdir()
        if self.as_user is not None:
            user = pwd.getpwnam(self.as_user)
            for path in (self.base, self.sock):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.run(
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            "-U",
            "postgres",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        """Start on a free port (another one if the port was taken meanwhile)."""
        for _attempt in range(3):
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            done = self.run(
                "pg_ctl",
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(START_SECONDS),
                "-o",
                options,
                check=False,
            )
            if done.returncode == 0:
                return
            if "already in use" not in self.log_tail():
                break
        raise RuntimeError(
            f"pg_ctl start exited with {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
            f"{self.log_tail()}"
        )

    def connect(self, dbname: str) -> Any:
        """A psycopg connection (autocommit), retried until the server accepts it."""
        import psycopg

        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                return psycopg.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user="postgres",
                    dbname=dbname,
                    autocommit=True,
                    connect_timeout=5,
                )
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the server on port {self.port} accepts no connection: {err}\n"
                        f"{self.log_tail()}"
                    ) from None
                time.sleep(0.2)

    def create_database(self, name: str) -> None:
        with self.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.connect(name).close()

    def stop(self) -> None:
        """Stop the server (fast shutdown; killed if it does not stop)."""
        if not (self.data / "postmaster.pid").exists():
            return
        done = self.run(
            "pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", check=False
        )
        if done.returncode == 0:
            return
        try:  # the first line of postmaster.pid is the server's process id
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/fmicl_tune`` of a fresh server that
    lives for the test session (each pytest-xdist worker gets its own)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL's initdb and pg_ctl are not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the psycopg driver is not installed (pip install 'psycopg[binary]')")
    as_user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            unavailable(f"running as root, and there is no {SERVER_USER!r} user to run the server")
        as_user = SERVER_USER
    # Not pytest's tmp_path: as root its parents are private (0700), the server user could
    # not reach the folder; the system temporary folder is world-traversable (else /tmp).
    parent = tempfile.gettempdir()
    if as_user is not None and not traversable(Path(parent)):
        parent = "/tmp"
    base = Path(tempfile.mkdtemp(prefix="fmicl-pg-", dir=parent))
    server = Server(bin_dir, base, as_user)
    try:
        server.init()
        server.start()
        server.create_database(DATABASE)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/{DATABASE}"
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)

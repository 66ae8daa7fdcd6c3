"""An earlier version's snapshotter, installed on its own, for upgrade tests (the
previous schema head) and before/after benchmarks (any commit).

"Previous" is the code at the commit that added the migration before the current
head: the version a rolling upgrade replaces. Its tree is taken with `git archive`
(nothing is registered in the repository, so an interrupted test leaves nothing
behind) and installed editable into a venv of its own, cached by commit (in
$PREVIOUS_VERSION_CACHE, else /tmp/snapshotter-previous-versions), so that only the
first run pays for the install. Builds of one commit wait for each other.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from snapshotter.db import migrate

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(
    os.environ.get("PREVIOUS_VERSION_CACHE")
    or Path(tempfile.gettempdir()) / "snapshotter-previous-versions"
)
INSTALL_TIMEOUT = 900


@dataclass(frozen=True, slots=True)
class PreviousVersion:
    revision: str  # its schema head
    commit: str
    snapshotter: Path  # its console script


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", migrate.SCRIPT_LOCATION)
    return ScriptDirectory.from_config(config)


def previous_head() -> tuple[str, Path]:
    """The revision the current head revises, and its migration file."""
    scripts = _scripts()
    current = scripts.get_current_head()
    assert current is not None
    head = scripts.get_revision(current)
    assert head is not None
    down = head.down_revision
    if not isinstance(down, str):
        raise TypeError(f"the head {head.revision} has no single previous revision: {down}")
    previous = scripts.get_revision(down)
    assert previous is not None
    assert previous.path is not None
    return previous.revision, Path(previous.path)


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def _install(commit: str, home: Path) -> None:
    source, venv = home / "src", home / "venv"
    shutil.rmtree(home, ignore_errors=True)
    source.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-input", "-e", str(source)],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )


def installed_version(commit: str) -> tuple[str, Path]:
    """The snapshotter of `commit` (any name git resolves), installed once per commit:
    its full hash and its console script."""
    commit = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
    home = CACHE / commit
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{commit}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "complete").exists():
            _install(commit, home)
            (home / "complete").touch()
    return commit, home / "venv" / "bin" / "snapshotter"


def installed_previous_version() -> PreviousVersion:
    """The previous schema head's snapshotter, installed (once per commit)."""
    revision, path = previous_head()
    commit = _git("log", "-1", "--format=%H", "--", str(path.relative_to(REPO)))
    if not commit:
        raise RuntimeError(f"no commit added {path.name}: is the clone shallow?")
    commit, snapshotter = installed_version(commit)
    return PreviousVersion(revision, commit, snapshotter)

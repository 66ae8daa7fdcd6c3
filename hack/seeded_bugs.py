"""Seeded bugs: each breaks one guard the tests claim to protect, and must fail them.

A test is worth what it can catch. Each bug below is a small edit of the engine that
a review once found the suite let through (or a defect that was really shipped). For
each, a scratch copy of the repository at HEAD gets the edit and runs the tests that
guard it; the bug is "killed" when they fail. Exit status 1 when one survives.

    make seeded-bugs                 # every bug (about 30 minutes on 2 cores)
    hack/seeded_bugs.py --only facts # the bugs whose name contains "facts"
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
INTERLEAVINGS = "tests/integration/test_interleavings.py"
GUARDS = "tests/integration/test_batch_guards.py"
ORDERING = "tests/integration/test_ordering.py"
COMPUTE = "tests/unit/test_compute.py"
# enough examples to reach every guarded path (the test itself asserts that)
INTERLEAVING_ENV = {
    "INTERLEAVING_EXAMPLES": "80",
    "INTERLEAVING_SEED": "20261202",
    "INTERLEAVING_SHRINK": "0",
    # a bug is killed when the oracle disagrees, not when a short run missed a path
    "INTERLEAVING_CHECK_REACH": "0",
}


@dataclass(frozen=True)
class Bug:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    also: tuple[tuple[str, str, str], ...] = ()  # more (path, old, new) edits


BUGS = (
    Bug(
        "absence decided although the object was observed after the list began",
        "snapshotter/sync/absences.py",
        "                if not version.not_after(listed):\n"
        "                    continue  # observed after the list began: its absence says nothing\n",
        "",
        (GUARDS, ORDERING, INTERLEAVINGS),
    ),
    Bug(
        "runner fold keeps an absence older than what it observed",
        "snapshotter/diff/runners.py",
        "            seen = replace(seen, vanished=None)  # observed after the list began",
        "            pass",
        (COMPUTE, INTERLEAVINGS),
    ),
    Bug(
        "both 'observed after the list began' checks removed",
        "snapshotter/sync/absences.py",
        "                if not version.not_after(listed):\n"
        "                    continue  # observed after the list began: its absence says nothing\n",
        "",
        (GUARDS, INTERLEAVINGS),
        also=(
            (
                "snapshotter/diff/runners.py",
                "            seen = replace(seen, vanished=None)  # observed after the list began",
                "            pass",
            ),
        ),
    ),
    Bug(
        "no facts protection in the runner upsert",
        "snapshotter/db/upserts.py",
        '        for fact in (*RUNNER_FACTS, "repository", "deletion_time"):\n'
        "            values[fact] = case((_unknown(t[fact], live), ex[fact]), else_=t[fact])\n",
        "",
        ("tests/integration/test_fact_protection.py",),
        also=(
            (
                "snapshotter/db/upserts.py",
                '        values["is_deleted"] = or_(t.is_deleted, ex.is_deleted)\n'
                '        values["is_completed"] = or_(t.is_completed, ex.is_completed)\n'
                '        for column in ("completed_at", "completion_time", "completion_source"):\n'
                "            values[column] = case("
                "(t.is_completed, t[column]), else_=ex[column])\n",
                "",
            ),
        ),
    ),
    Bug(
        "absences of a failed transaction are not restored",
        "snapshotter/sync/applier.py",
        "            self.absences.restore(saved)  # the work comes back: decide it again then",
        "            pass",
        (GUARDS, INTERLEAVINGS),
    ),
    Bug(
        "orphan adoption brings back a runner gone in the same batch",
        "snapshotter/diff/compute.py",
        "            if uid in self.gone or runner.runner_set_uid is not None:",
        "            if runner.runner_set_uid is not None:",
        (GUARDS, INTERLEAVINGS),
    ),
    Bug(
        "a refused object escapes the applier instead of being recorded",
        "snapshotter/sync/applier.py",
        "                self._reject(groups[0], e, result)\n                return\n",
        "                raise\n",
        (INTERLEAVINGS,),
    ),
    Bug(
        "a deleted runner forgets when its last observation arrived",
        "snapshotter/diff/state.py",
        "            state.gone.note_seq(uid, last)",
        "            pass",
        (GUARDS, INTERLEAVINGS),
    ),
    Bug(
        "an older observation ignored moves the stored arrival order back",
        "snapshotter/diff/state.py",
        "        state.seqs[uid] = max(seq, state.seqs.get(uid, 0))",
        "        state.seqs[uid] = seq",
        (GUARDS, INTERLEAVINGS),
    ),
    Bug(
        "a deposed leader's transactions are not fenced",
        "snapshotter/db/fencing.py",
        "    if fence is None:\n        return\n",
        "    return\n",
        (INTERLEAVINGS,),
    ),
    Bug(
        "a late fact about a runner whose name a newer one took is written over that name",
        "snapshotter/db/names.py",
        '    return [r for r in rows if r["uid"] not in held]\n',
        "    return rows\n",
        ("tests/integration/test_lens_engine.py", INTERLEAVINGS),
    ),
    Bug(
        "an older runner learned late takes the row of a newer one of its name",
        "snapshotter/db/names.py",
        "t.creation_timestamp <= created),",
        "True),",
        ("tests/integration/test_lens_engine.py", INTERLEAVINGS),
    ),
    Bug(
        "a new runner whose name an older one still holds is left without a row",
        "snapshotter/db/names.py",
        "        if not only_newer or UNKNOWN in (mine, theirs) or theirs >= mine:\n",
        "        if True:\n",
        ("tests/integration/test_lens_engine.py",),
    ),
    Bug(
        "a runner being deleted is skipped as unchanged by a list",
        "snapshotter/sync/intake.py",
        "                        and not item.terminating\n",
        "",
        (
            "tests/e2e/test_finalizers.py::"
            "test_a_runner_committed_but_not_released_is_released_by_the_next_daemon",
        ),
    ),
)


def scratch_copy(into: Path) -> Path:
    """The repository at HEAD plus the working tree's edits, without the venv."""
    copy = into / "repo"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv", ".testbin", ".git", "__pycache__", "*.db", ".hypothesis", "mutants"
        ),
        symlinks=True,
    )
    (copy / ".testbin").symlink_to(ROOT / ".testbin")
    return copy


def run(bug: Bug, scratch: Path) -> list[tuple[str, bool, float]]:
    """For each of the bug's tests: whether it fails (kills the bug), and how long it
    took. Every test is run, so that the result says which of them catch the bug."""
    edits = ((bug.path, bug.old, bug.new), *bug.also)
    originals = {path: (scratch / path).read_text() for path, _, _ in edits}
    for path, old, new in edits:
        text = (scratch / path).read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{bug.name}: the guarded code is not in {path} once; update it")
        (scratch / path).write_text(text.replace(old, new))
    env = {**os.environ, **INTERLEAVING_ENV, "PYTHONPATH": str(scratch)}
    results = []
    try:
        for test in bug.tests:
            started = time.monotonic()
            result = subprocess.run(
                [str(PYTHON), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", test],
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            results.append((test, result.returncode != 0, time.monotonic() - started))
    finally:
        for path, text in originals.items():
            (scratch / path).write_text(text)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run the bugs whose name contains this")
    args = parser.parse_args()
    bugs = [b for b in BUGS if args.only in b.name]
    survived = 0
    with tempfile.TemporaryDirectory(prefix="seeded-bugs-") as tmp:
        scratch = scratch_copy(Path(tmp))
        for bug in bugs:
            results = run(bug, scratch)
            killed = any(failed for _, failed, _ in results)
            survived += not killed
            print(f"{'killed  ' if killed else 'SURVIVED'} {bug.name}", flush=True)
            for test, failed, seconds in results:
                verdict = "fails " if failed else "passes"
                print(f"    {verdict} {seconds:6.0f}s  {test}", flush=True)
    print(f"{len(bugs) - survived} of {len(bugs)} seeded bugs killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())

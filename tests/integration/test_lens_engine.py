"""The engine on an adopted Lens database, where runner states are keyed by name and
run rows by (runner_set_id, workload_uid): a reused name never costs the older
runner its job, and a runner seen before its pool gets one run row, not two."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from snapshotter.db import migrate
from snapshotter.diff.runner_kinds import WORKER, RunnerKinds
from snapshotter.kube import resources
from tests.support import arc_objects as arc
from tests.support import lens_schema
from tests.support.db_rows import rows
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NAME = f"{lens_schema.POOL}-abcde-runner-r1"


@pytest.fixture
def adopted(empty_pg_engine: Engine) -> Engine:
    lens_schema.create(empty_pg_engine)
    migrate.upgrade(empty_pg_engine)
    return empty_pg_engine


def pool() -> tuple[dict[str, object], dict[str, object]]:
    ars = arc.runner_set(name=lens_schema.POOL, namespace=lens_schema.NAMESPACE, uid="ars", rv="1")
    return ars, arc.ephemeral_runner_set(ars, uid="ers", rv="2")


def our_runs(engine: Engine) -> list[dict[str, object]]:
    return [r for r in rows(engine, "github_workflow_runs") if r["workload_uid"] in ("u1", "u3")]


def test_a_reused_name_keeps_the_older_runners_job(adopted: Engine) -> None:
    """u1 ran a job and its deletion was missed; the next list shows only u2 under
    the same name. u1's end is recorded (and its run) before u2 takes the row."""
    ars, ers = pool()
    busy = arc.with_job(arc.ephemeral_runner(ers, name=NAME, uid="u1", rv="10"))
    harness = Harness(adopted, clock=lambda: NOW)
    harness.poll(MemorySource([ars, ers, busy]))
    successor = arc.ephemeral_runner(ers, name=NAME, uid="u2", rv="20")
    harness.poll(MemorySource([ars, ers, successor]))

    assert [r["workload_uid"] for r in our_runs(adopted)] == ["u1"]
    assert rows(adopted, "snapshotter_rejects") == []
    named = [r for r in rows(adopted, "github_ephemeral_runner_states") if r["name"] == NAME]
    assert [r["uid"] for r in named] == ["u2"]


def test_a_runner_seen_before_its_pool_and_gone_with_it_has_one_run(adopted: Engine) -> None:
    """Watch streams are not ordered across resources: the runner's events arrive
    first, then its pool's, together with its deletion. One run row, with the pool."""
    ars, ers = pool()
    harness = Harness(adopted, clock=lambda: NOW)
    busy = arc.with_job(arc.ephemeral_runner(ers, name=NAME, uid="u3", rv="10"))
    harness.event("ADDED", busy)
    harness.drain()
    harness.event("ADDED", ars, resources.AUTOSCALING_RUNNER_SETS)
    harness.event("ADDED", ers, resources.EPHEMERAL_RUNNER_SETS)
    harness.event("DELETED", arc.bumped(busy, "30"))
    harness.drain()

    runs = our_runs(adopted)
    assert len(runs) == 1
    assert runs[0]["runner_set_id"] is not None
    state = next(r for r in rows(adopted, "github_ephemeral_runner_states") if r["uid"] == "u3")
    assert state["resource_version"] == "30"
    assert state["is_deleted"] is True


def test_a_job_learned_after_a_reused_name_took_the_row_keeps_its_run(adopted: Engine) -> None:
    """u1's end is recorded when u2 takes its name, and the row goes to u2; a list
    taken before that, handed over after, shows u1 with a job. The job is u1's run
    (u1 has no row left to update, and that must not refuse the object)."""
    ars, ers = pool()
    harness = Harness(adopted, clock=lambda: NOW)
    idle = arc.ephemeral_runner(ers, name=NAME, uid="u1", rv="10")
    harness.poll(MemorySource([ars, ers, idle]))
    token = harness.begin_list()  # a list taken now sees u1 with its job ...
    listed = MemorySource([ars, ers, arc.with_job(arc.bumped(idle, "15"))])
    listed.list_version = 14  # lists carry the resourceVersion of their time
    harness.event("ADDED", arc.ephemeral_runner(ers, name=NAME, uid="u2", rv="20"))
    harness.drain()  # ... u2 takes the name, so u1 is gone and its row is u2's
    harness.hand_list(listed, token=token)  # the list reaches the writer last
    harness.drain()

    assert [r["workload_uid"] for r in our_runs(adopted)] == ["u1"]
    assert rows(adopted, "snapshotter_rejects") == []
    named = [r for r in rows(adopted, "github_ephemeral_runner_states") if r["name"] == NAME]
    assert [(r["uid"], r["is_deleted"]) for r in named] == [("u2", False)]


def test_an_older_runner_learned_late_never_takes_the_newer_ones_row(adopted: Engine) -> None:
    """u2 took the name after u1 and is gone, its row kept; a list taken before shows
    u1, which the next list does not. Lens keeps the newest runner's row per name:
    u1's job is its run, and the row stays u2's."""
    ars, ers = pool()
    harness = Harness(adopted, clock=lambda: NOW)
    harness.poll(MemorySource([ars, ers]))
    token = harness.begin_list()  # a list taken now sees u1 with its job ...
    older = arc.with_job(arc.ephemeral_runner(ers, name=NAME, uid="u1", rv="15"))
    listed = MemorySource([ars, ers, older])
    listed.list_version = 14  # lists carry the resourceVersion of their time
    newer = arc.ephemeral_runner(ers, name=NAME, uid="u2", rv="20", created="2026-11-28T09:05:00Z")
    harness.event("ADDED", newer)  # ... then u1 is gone, and u2 comes and goes
    harness.event("DELETED", arc.bumped(newer, "21"))
    harness.drain()
    harness.hand_list(listed, token=token)  # the list reaches the writer last
    harness.drain()
    harness.poll(MemorySource([ars, ers]))  # u1 is gone from the next list

    assert [r["workload_uid"] for r in our_runs(adopted)] == ["u1"]
    assert rows(adopted, "snapshotter_rejects") == []
    named = [r for r in rows(adopted, "github_ephemeral_runner_states") if r["name"] == NAME]
    assert [r["uid"] for r in named] == ["u2"]


@pytest.mark.parametrize("busy", [False, True])
def test_a_name_taken_while_the_older_runners_end_is_refused(adopted: Engine, busy: bool) -> None:
    """The database refuses u1's end (a rule about u1's row alone); meanwhile u2 takes
    the name and goes. Once the rule is lifted and u1 retried, the name shows u2's row,
    the newest, and every job is a run."""
    ars, ers = pool()
    harness = Harness(adopted, clock=lambda: NOW)
    u1 = arc.ephemeral_runner(ers, name=NAME, uid="u1", rv="10")
    harness.poll(MemorySource([ars, ers, u1]))
    with adopted.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse_u1_end() RETURNS trigger AS $$ BEGIN "
            "IF NEW.uid = 'u1' AND NEW.is_deleted THEN "
            "RAISE EXCEPTION 'refused' USING ERRCODE = '23514'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_u1_end BEFORE INSERT OR UPDATE ON "
            "github_ephemeral_runner_states FOR EACH ROW EXECUTE FUNCTION refuse_u1_end()"
        )
    harness.poll(MemorySource([ars, ers]))  # u1 is gone: its end is refused
    assert [r["uid"] for r in rows(adopted, "snapshotter_rejects")] == ["u1"]
    u2 = arc.ephemeral_runner(ers, name=NAME, uid="u2", rv="20", created="2026-11-28T09:05:00Z")
    if busy:
        u2 = arc.with_job(u2)
    harness.event("ADDED", u2)
    harness.event("DELETED", arc.bumped(u2, "21"))
    harness.drain()
    with adopted.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse_u1_end ON github_ephemeral_runner_states")
    harness.applier.retry_rejected()
    harness.drain()
    harness.poll(MemorySource([ars, ers]))

    runs = rows(adopted, "github_workflow_runs")
    assert [r["workload_uid"] for r in runs if r["workload_uid"] in ("u1", "u2")] == (
        ["u2"] if busy else []
    )
    assert rows(adopted, "snapshotter_rejects") == []
    named = [r for r in rows(adopted, "github_ephemeral_runner_states") if r["name"] == NAME]
    assert [(r["uid"], r["is_deleted"]) for r in named] == [("u2", True)]


def named_rows(engine: Engine, name: str = NAME) -> list[tuple[str, bool]]:
    states = rows(engine, "github_ephemeral_runner_states")
    return [(r["uid"], r["is_deleted"]) for r in states if r["name"] == name]


def test_a_new_runner_frees_only_its_own_name(adopted: Engine) -> None:
    """An ended runner's row stays when a new runner of another name is written."""
    ars, ers = pool()
    harness = Harness(adopted, clock=lambda: NOW)
    ended = arc.ephemeral_runner(ers, name=NAME, uid="u1", rv="10")
    harness.poll(MemorySource([ars, ers, ended]))
    harness.poll(MemorySource([ars, ers]))  # u1 is gone: its end is recorded
    other = f"{lens_schema.POOL}-abcde-runner-r2"
    later = arc.ephemeral_runner(ers, name=other, uid="u2", rv="20", created="2026-11-28T09:05:00Z")
    harness.poll(MemorySource([ars, ers, later]))

    assert named_rows(adopted) == [("u1", True)]
    assert named_rows(adopted, other) == [("u2", False)]


@pytest.mark.parametrize(
    ("newer_first", "created"),
    [
        (False, "2026-11-28T09:05:00Z"),
        (True, "2026-11-28T09:05:00Z"),
        (False, "2026-11-28T09:00:00Z"),
    ],
    ids=["in-order", "newer-first", "same-second"],
)
def test_of_two_new_runners_of_one_name_in_a_batch_the_newer_gets_the_row(
    adopted: Engine, newer_first: bool, created: str
) -> None:
    """u1 comes and goes, u2 takes its name, all before the writer's next batch: the
    row is u2's, whichever came first in the batch, and also when both were created
    in the same second (creation times have one-second resolution; then the one that
    came last is the newer); u1's job is its run."""
    ars, ers = pool()
    harness = Harness(adopted, clock=lambda: NOW)
    harness.poll(MemorySource([ars, ers]))
    older = arc.with_job(arc.ephemeral_runner(ers, name=NAME, uid="u1", rv="10"))
    newer = arc.ephemeral_runner(ers, name=NAME, uid="u2", rv="20", created=created)
    events = [("ADDED", older), ("DELETED", arc.bumped(older, "11"))]
    events = [("ADDED", newer), *events] if newer_first else [*events, ("ADDED", newer)]
    for kind, obj in events:
        harness.event(kind, obj)
    harness.drain()

    assert named_rows(adopted) == [("u2", False)]
    assert [r["workload_uid"] for r in our_runs(adopted)] == ["u1"]
    assert rows(adopted, "snapshotter_rejects") == []


def test_a_runner_without_a_creation_time_takes_an_ended_runners_name(adopted: Engine) -> None:
    """The API server always sets creationTimestamp; without one the runner counts
    as of unknown age, and an ended runner's row of its name is still freed for it."""
    ars, ers = pool()
    harness = Harness(adopted, clock=lambda: NOW)
    ended = arc.ephemeral_runner(ers, name=NAME, uid="u1", rv="10")
    harness.poll(MemorySource([ars, ers, ended]))
    harness.poll(MemorySource([ars, ers]))
    unborn = arc.merged(
        arc.ephemeral_runner(ers, name=NAME, uid="u2", rv="20"),
        {"metadata": {"creationTimestamp": None}},
    )
    harness.poll(MemorySource([ars, ers, unborn]))

    assert named_rows(adopted) == [("u2", False)]
    assert rows(adopted, "snapshotter_rejects") == []


def test_lenss_own_runner_columns_are_filled(adopted: Engine) -> None:
    """The columns Lens reads from a runner-state row under its own names: the
    repository, completion and deletion times, runner_type from the name, and the
    row's created_at/updated_at from the snapshotter's clock (not the server's)."""
    ars, ers = pool()
    kinds = RunnerKinds.from_pattern("-runner-r1$")  # this name is a worker's
    harness = Harness(adopted, clock=lambda: NOW, runner_kinds=kinds)
    busy = arc.with_job(arc.ephemeral_runner(ers, name=NAME, uid="u1", rv="10"))
    harness.poll(MemorySource([ars, ers, busy]))
    ending = arc.bumped(busy, "11", metadata={"deletionTimestamp": "2026-11-28T11:59:00Z"})
    harness.poll(MemorySource([ars, ers, ending]))

    row = next(r for r in rows(adopted, "github_ephemeral_runner_states") if r["uid"] == "u1")
    assert row["repository"] == arc.JOB_STATUS["jobRepositoryName"]
    assert row["deletion_time"] == datetime(2026, 11, 28, 11, 59, tzinfo=UTC)
    assert row["completion_time"] == row["completed_at"] is not None
    assert row["runner_type"] == WORKER
    assert row["created_at"] == row["updated_at"] == NOW


def test_a_row_lenss_exporter_wrote_gives_its_name_to_a_newer_runner(adopted: Engine) -> None:
    """Lens's own row of a name (written by its exporter: no resourceVersion, not
    marked deleted) goes to a runner created after it that now holds the name."""
    name = "gpu-runners-abcde-runner-bbbbb"  # Lens's row: lens-er-0002, live to Lens
    ars, ers = pool()
    harness = Harness(adopted, clock=lambda: NOW)
    newer = arc.ephemeral_runner(ers, name=name, uid="u9", rv="10")
    harness.poll(MemorySource([ars, ers, newer]))

    assert named_rows(adopted, name) == [("u9", False)]
    assert rows(adopted, "snapshotter_rejects") == []

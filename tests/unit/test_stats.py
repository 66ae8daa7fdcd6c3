"""The daemon's metrics as Prometheus reads them: the job metrics' label subsets and
series cap, no `_created` series, build info and the runtime collectors, restarts
counted as restarts. Every check parses the text exposition of the registry with
prometheus_client's own parser, as a scrape would."""

import threading
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from snapshotter.diff.rows import RunnerStateRow
from snapshotter.errors import KubeUnavailable
from snapshotter.kube import resources
from snapshotter.ops.job_metrics import JOB_LABELS, OTHER, SeriesCap
from snapshotter.ops.stats import SyncStats, register_runtime_collectors, version
from snapshotter.settings import JobLabel, MetricsSettings
from snapshotter.sync.applier import WatchLiveness
from snapshotter.sync.intake import Intake
from snapshotter.sync.observations import ParseReport
from snapshotter.sync.queue import PendingQueue
from snapshotter.sync.watcher import Watcher, WatchTuning
from tests.unit.test_watcher import FakeSource, Script

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stats: SyncStats) -> Samples:
    text = generate_latest(stats.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def finished(
    pool: str = "arc-runners/linux",
    repository: str = "acme/app",
    workflow: str = "ci",
    source: str = "deleted",
) -> RunnerStateRow:
    namespace, name = pool.split("/")
    return RunnerStateRow(
        uid=f"{pool}-{repository}-{workflow}",
        cluster_name="",
        namespace=namespace,
        name="runner",
        runner_set_uid=None,
        runner_set_name=name,
        runner_set_namespace=namespace,
        phase=None,
        ready=None,
        reason=None,
        message=None,
        runner_id=1,
        runner_name="runner",
        job_id="j",
        job_request_id=None,
        job_repository=repository,
        job_workflow_ref=None,
        job_workflow_run_id=None,
        job_display_name=None,
        github_run_id=None,
        github_run_number=None,
        github_job_id=None,
        head_sha=None,
        head_branch=None,
        workflow_name=workflow,
        pod_failures=0,
        creation_timestamp=T0,
        deletion_timestamp=None,
        job_assigned_at=T0 + timedelta(seconds=15),
        completed_at=T0 + timedelta(seconds=75),
        completion_source=source,  # type: ignore[arg-type]
        is_completed=True,
        is_deleted=True,
        resource_version="1",
        first_seen_at=T0,
        last_seen_at=T0,
    )


def test_pools_are_labelled_like_arcs_metrics_by_default() -> None:
    stats = SyncStats()
    stats.job_finished(finished())
    samples = scrape(stats)
    labels = (("completion_source", "deleted"), ("name", "linux"), ("namespace", "arc-runners"))
    assert series(samples, "snapshotter_jobs_finished_total") == {labels: 1}
    assert series(samples, "snapshotter_job_duration_seconds_sum") == {labels: 60}
    assert series(samples, "snapshotter_runner_startup_seconds_sum") == {labels: 15}


@pytest.mark.parametrize(
    ("options", "labels"),
    [
        ((), ()),
        (("repository",), (("repository", "acme/app"),)),
        (("workflow", "pool_name"), (("name", "linux"), ("workflow", "ci"))),
        (
            tuple(JOB_LABELS),
            (
                ("completion_source", "deleted"),
                ("name", "linux"),
                ("namespace", "arc-runners"),
                ("repository", "acme/app"),
                ("workflow", "ci"),
            ),
        ),
    ],
)
def test_the_job_metrics_carry_exactly_the_chosen_labels(
    options: tuple[str, ...], labels: tuple[tuple[str, str], ...]
) -> None:
    stats = SyncStats(job_labels=options)
    stats.job_finished(finished())
    stats.job_finished(finished())
    samples = scrape(stats)
    assert series(samples, "snapshotter_jobs_finished_total") == {labels: 2}
    assert series(samples, "snapshotter_job_duration_seconds_count") == {labels: 2}
    assert series(samples, "snapshotter_runner_startup_seconds_count") == {labels: 2}


def test_past_the_cap_new_label_sets_fold_into_other_and_are_counted() -> None:
    stats = SyncStats(job_labels=("pool_name", "repository"), job_series_cap=3)
    for n in range(5):
        stats.job_finished(finished(repository=f"acme/repo-{n}"))
    stats.job_finished(finished(repository="acme/repo-1"))  # admitted before: its own series
    stats.job_finished(finished(repository="acme/repo-4"))  # folded again
    samples = scrape(stats)
    counts = series(samples, "snapshotter_jobs_finished_total")
    assert counts == {
        (("name", "linux"), ("repository", "acme/repo-0")): 1,
        (("name", "linux"), ("repository", "acme/repo-1")): 2,
        (("name", "linux"), ("repository", "acme/repo-2")): 1,
        (("name", OTHER), ("repository", OTHER)): 3,
    }
    assert series(samples, "snapshotter_job_series_folded_total") == {(): 3}
    histogram = series(samples, "snapshotter_job_duration_seconds_count")
    assert set(histogram) == set(counts)  # the histograms fold the same way


def test_the_cap_holds_under_concurrent_jobs() -> None:
    cap = SeriesCap(50)
    admitted: list[tuple[str, ...] | None] = []

    def record(offset: int) -> None:
        admitted.extend(cap.admit((str(offset + n),)) for n in range(100))

    threads = [threading.Thread(target=record, args=(1000 * t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cap) == 50
    assert sum(a is not None for a in admitted) == 50


def test_the_settings_offer_the_same_labels_and_refuse_repeats() -> None:
    assert set(get_args(JobLabel)) == set(JOB_LABELS)
    with pytest.raises(ValueError, match="named twice"):
        MetricsSettings(job_labels=("repository", "repository"))
    with pytest.raises(ValueError, match="job labels"):
        SyncStats(job_labels=("branch",))


def test_no_created_series_and_build_info_and_runtime_metrics() -> None:
    stats = SyncStats()
    register_runtime_collectors(stats.registry)
    stats.job_finished(finished())
    stats.reject("ephemeralrunners")
    samples = scrape(stats)
    assert not [name for name, _ in samples if name.endswith("_created")]
    assert series(samples, "snapshotter_build_info") == {(("version", version()),): 1}
    assert version() != "unknown"  # the package is installed in the test environment
    names = {name for name, _ in samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert {"python_info", "python_gc_collections_total"} <= names


def test_rejections_and_lease_errors_are_counted_from_zero() -> None:
    stats = SyncStats()
    rejected = series(scrape(stats), "snapshotter_objects_rejected_total")
    assert set(rejected.values()) == {0}
    assert {dict(labels)["resource"] for labels in rejected} == {r.plural for r in resources.ALL}
    stats.leader_election_error("forbidden")
    stats.leader_election_error("forbidden")
    errors = series(scrape(stats), "snapshotter_leader_election_errors_total")
    assert errors == {(("reason", "forbidden"),): 2}


def run_watcher(scripts: list[Script], stats: SyncStats) -> None:
    """A watcher over scripted watch requests, until the script is over."""
    stop = threading.Event()
    source = FakeSource(scripts, stop)
    watcher = Watcher(
        source=source,
        intake=Intake(PendingQueue(cap=100), lambda _r, _u: None, ParseReport(), lambda: T0),
        liveness=WatchLiveness(),
        resource=resources.EPHEMERAL_RUNNERS,
        namespace=None,
        stats=stats,
        tuning=WatchTuning(room_fraction=2.0),
        resume_from="1",
    )
    watcher._backoff.maximum = watcher._backoff.initial = 0.001
    source.on_over = watcher.stop

    def stop_when_over() -> None:
        stop.wait(10)
        watcher.stop()

    stopper = threading.Thread(target=stop_when_over)
    stopper.start()
    watcher.run()
    stopper.join()


@pytest.mark.timeout(20)
def test_the_first_watch_of_a_stream_is_not_a_restart() -> None:
    stats = SyncStats()
    # the first watch fails, the second ends; the third is the fake's last (it stops)
    run_watcher([Script([], KubeUnavailable("reset")), Script([])], stats)
    restarts = series(scrape(stats), "snapshotter_watch_restarts_total")
    # opened 3 times: the first watch, after the error, after the end (the fake's
    # closing request); two of them are restarts
    assert restarts == {(("resource", "ephemeralrunners"),): 2}
    assert stats.watch_restarts == 2


def test_a_stream_that_opened_once_shows_zero_restarts() -> None:
    stats = SyncStats()
    stats.watch_opened("ephemeralrunners/ns")
    assert series(scrape(stats), "snapshotter_watch_restarts_total") == {
        (("resource", "ephemeralrunners/ns"),): 0
    }

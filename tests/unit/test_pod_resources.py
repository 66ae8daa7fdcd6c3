"""What a job cost: Kubernetes quantities, the sums over a runner pod's containers,
the parse of a runner's template, and the resource-seconds metric (SPEC §3.6)."""

from dataclasses import replace
from typing import Any

import pytest

from snapshotter.diff.matching import WorkflowConfig, compile_config
from snapshotter.diff.runs import run_rows
from snapshotter.model import parse
from snapshotter.model.pod_resources import pod_resources
from snapshotter.model.quantity import InvalidQuantity, parse_quantity, whole_units
from snapshotter.model.records import RUNNERS
from snapshotter.ops.stats import SyncStats
from snapshotter.sync import observations
from snapshotter.sync.observations import ParseReport
from tests.support import arc_objects as arc
from tests.support.observing import runner_events
from tests.support.scenario import T2, diff, loaded
from tests.unit.test_stats import finished, scrape, series

GI = 2**30
ANY_RUN = compile_config(
    WorkflowConfig(
        id=1,
        name="all",
        runner_set_namespace="",
        runner_set_name="",
        cluster_name="",
        workflow_filter=None,
        branch_filter=None,
        enabled=True,
    )
)


@pytest.mark.parametrize(
    ("resource", "value", "units"),
    [
        ("cpu", "500m", 500),
        ("cpu", "2", 2000),
        ("cpu", "1.5", 1500),
        ("cpu", 2, 2000),
        ("cpu", 0.25, 250),
        ("cpu", "0.1m", 1),  # rounded up, as MilliValue() rounds
        ("cpu", ".5", 500),
        ("cpu", "+1", 1000),
        ("memory", "4Gi", 4 * GI),
        ("memory", "1G", 10**9),
        ("memory", "128974848", 128974848),
        ("memory", "129e6", 129_000_000),
        ("memory", "129E6", 129_000_000),
        ("memory", "123Mi", 128974848),
        ("memory", "1.5Gi", 3 * GI // 2),
        ("memory", "1k", 1000),
        ("memory", "1Ki", 1024),
        ("memory", "0.5", 1),  # rounded up, as Value() rounds
        ("memory", "12e-1", 2),
        ("memory", "0", 0),
        ("amd.com/gpu", "8", 8),
        ("nvidia.com/gpu", 1, 1),
        ("ephemeral-storage", "10Gi", 10 * GI),
    ],
)
def test_quantities_in_whole_units(resource: str, value: object, units: int) -> None:
    assert whole_units(resource, value) == units


@pytest.mark.parametrize(
    "value",
    ["", "abc", "1.2.3", "4GiB", "Gi", "1 Gi", "-1", "-500m", "1e", "1e999", "0x10", "1ii", "5g"],
)
def test_malformed_quantities_are_refused(value: str) -> None:
    with pytest.raises(InvalidQuantity):
        parse_quantity(value)


@pytest.mark.parametrize("value", [None, True, [], {}, float("nan"), float("inf")])
def test_values_of_the_wrong_type_are_refused(value: object) -> None:
    with pytest.raises(InvalidQuantity):
        parse_quantity(value)


def test_out_of_range_amounts_are_refused() -> None:
    with pytest.raises(InvalidQuantity):
        whole_units("memory", "16Ei")


def container(requests: Any = None, limits: Any = None, **extra: Any) -> dict[str, Any]:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}
    return {"name": "c", "image": "i", "resources": resources, **extra}


def test_sums_over_containers_and_sidecars_but_not_init_containers() -> None:
    pod = {
        "containers": [
            container({"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "8Gi"}),
            container({"cpu": "500m", "memory": "512Mi"}),
            {"name": "no-resources"},
        ],
        "initContainers": [
            container({"cpu": "8", "memory": "32Gi"}),  # ends before the runner starts
            container({"cpu": "1", "memory": "1Gi"}, restartPolicy="Always"),  # a sidecar
        ],
    }
    warnings: list[str] = []
    found = pod_resources(pod, warnings)
    assert found.requests == {"cpu": 3500, "memory": 5 * GI + GI // 2}
    assert found.limits == {"cpu": 4000, "memory": 8 * GI}
    assert warnings == []


def test_a_limit_without_a_request_is_the_request() -> None:
    pod = {"containers": [container({"cpu": "1"}, {"cpu": "2", "amd.com/gpu": "8"})]}
    found = pod_resources(pod, [])
    assert found.requests == {"cpu": 1000, "amd.com/gpu": 8}
    assert found.limits == {"cpu": 2000, "amd.com/gpu": 8}


def test_a_malformed_entry_is_skipped_and_reported_and_the_rest_counts() -> None:
    pod = {
        "containers": [
            container({"cpu": "lots", "memory": "1Gi", "bad name!": "1", "amd.com/gpu": "-1"}),
            container({"cpu": "250m"}),
            container("not a map"),
            "not a container",
        ]
    }
    warnings: list[str] = []
    found = pod_resources(pod, warnings)
    assert found.requests == {"cpu": 250, "memory": GI}
    assert found.limits is None
    assert len(warnings) == 4
    assert any("containers[0].resources.requests.cpu" in w for w in warnings)


def test_no_resources_at_all_is_unknown() -> None:
    assert pod_resources({"containers": [{"name": "runner"}]}, []).requests is None


def runner(pod_spec: Any) -> dict[str, Any]:
    raw = arc.served(arc.sample("er-running-job"))
    raw["spec"]["spec"] = pod_spec
    return raw


def test_the_runner_sample_records_its_template() -> None:
    record = parse.parse_ephemeral_runner(arc.served(arc.sample("er-running-job"))).record
    assert record.resources is not None
    assert record.resources.requests == {"cpu": 2000, "memory": 4 * GI}
    assert record.resources.limits == {"cpu": 4000, "memory": 8 * GI}


def test_a_bad_quantity_is_a_warning_not_a_parse_error() -> None:
    parsed = parse.parse_ephemeral_runner(
        runner({"containers": [container({"cpu": "2 cores", "amd.com/gpu": 8})]})
    )
    assert parsed.record.resources is not None
    assert parsed.record.resources.requests == {"amd.com/gpu": 8}
    assert parsed.record.phase == "Running"  # nothing else lost
    assert [w for w in parsed.warnings if "2 cores" in w]


def test_a_template_of_the_wrong_type_is_a_warning() -> None:
    parsed = parse.parse_ephemeral_runner(runner(["not", "a", "pod"]))
    assert parsed.record.resources is not None
    assert parsed.record.resources.requests is None
    assert parsed.warnings


def test_the_run_row_keeps_the_runners_requests() -> None:
    row = replace(finished(), resource_requests={"cpu": 2000, "amd.com/gpu": 8})
    (run,) = run_rows(row, [ANY_RUN], cluster_name="")
    assert run.resource_requests == {"cpu": 2000, "amd.com/gpu": 8}


def test_resource_seconds_are_requests_times_job_duration() -> None:
    stats = SyncStats()
    # the job ran 60 s (assigned at +15 s, finished at +75 s)
    row = replace(finished(), resource_requests={"cpu": 2500, "memory": GI, "amd.com/gpu": 8})
    stats.job_finished(row)
    stats.job_finished(replace(finished(), resource_requests=None))  # unknown: adds nothing
    got = series(scrape(stats), "snapshotter_job_resource_seconds_total")
    pool = (("completion_source", "deleted"), ("name", "linux"), ("namespace", "arc-runners"))
    assert got == {
        (*pool, ("resource", "amd.com/gpu")): 480.0,
        (*pool, ("resource", "cpu")): 150.0,  # cores, not millicores
        (*pool, ("resource", "memory")): 60.0 * GI,
    }


def test_a_template_unreadable_later_keeps_what_was_read(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    before = state.runners["er-busy"]
    assert before.resource_requests == {"cpu": 2000, "memory": 4 * GI}  # the sample's
    unreadable = arc.bumped(cluster["busy"], "30", spec={"spec": "not a pod"})
    _, after = diff(state, runner_events(T2, changed=[unreadable]), T2)
    assert after.runners["er-busy"].resource_requests == before.resource_requests
    assert after.runners["er-busy"].resource_limits == before.resource_limits
    pod = {"containers": [container({"cpu": "1"})]}
    resized = arc.bumped(cluster["busy"], "31", spec={"spec": pod})
    _, after = diff(after, runner_events(T2, changed=[resized]), T2)
    assert after.runners["er-busy"].resource_requests == {"cpu": 1000}  # a newer template wins
    assert after.runners["er-busy"].resource_limits is None


def test_a_bad_quantity_is_logged_and_counted_once_per_object_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = SyncStats()
    report = ParseReport(stats=stats)
    raw = runner({"containers": [container({"cpu": "2 cores", "memory": "1Gi"})]})
    for seq in (1, 2):  # the same version, listed and then watched
        seen = observations.observe(RUNNERS, raw, at=T2, seq=seq, report=report)
        assert seen is not None
        assert seen.record.resources.requests == {"memory": GI}
    assert series(scrape(stats), "snapshotter_fields_ignored_total") == {
        (("kind", "EphemeralRunner"),): 1.0
    }
    assert [r.message for r in caplog.records if "2 cores" in r.getMessage()]

# github-runners-snapshotter chart

Installs the snapshotter next to ARC (`gha-runner-scale-set-controller`): it records
every job ARC's runners ran into the Primus Lens PostgreSQL database. How it works,
its configuration and its tables: the [project README](../../README.md).

<!-- Generated from README.md.tpl and values.yaml by hack/chart_readme.py; a test keeps it in step. -->

## Install

```sh
kubectl -n primus-lens create secret generic primus-lens-database \
  --from-literal=url='postgresql://lens:PASSWORD@postgres:5432/lens'
helm install github-runners-snapshotter charts/github-runners-snapshotter -n primus-lens \
  --set config.cluster_name=prod-east \
  --set-json 'config.workflow_configs=[{"name":"ci","runner_set_name":"arc-linux-x64"}]'
```

`values.schema.json` refuses unknown keys and wrong types (in `config` too: it is
generated from the snapshotter's settings), so a typo fails `helm install`, not the pod.
`config.database.url` is refused: the URL, with its password, comes from a Secret.

## What it installs

- **Two replicas with leader election** on a Lease (one writes; a standby keeps its
  watches warm), spread over nodes, a PodDisruptionBudget that never blocks a drain
  (`unhealthyPodEvictionPolicy: AlwaysAllow`), startup, liveness and readiness probes,
  a non-root pod with a read-only root filesystem. With
  `config.leader_election.enabled=false` it runs exactly one replica with the
  `Recreate` strategy: the database fence is off then, and two replicas would both write.
- **RBAC**: `get`/`list`/`watch` on the three ARC resources, cluster-wide (a
  ClusterRole) or, when `config.namespaces` is set (or `rbac.namespaced`), a Role in
  each of those namespaces only, as ARC's single-namespace mode; `get` on the
  kube-system namespace (the cluster's identity; a Role in kube-system in namespaced
  mode); the Lease Role in `config.leader_election.namespace` (default: the release
  namespace) with `get`/`update` on the one Lease by name and `create` (which RBAC
  cannot restrict by name); with finalizer capture, `patch` on ephemeralrunners,
  narrowed by a ValidatingAdmissionPolicy to the snapshotter's own finalizer.
- **Metrics**: a Service for `/metrics` and, with `serviceMonitor.enabled`, a
  ServiceMonitor (`honorLabels: true` keeps the job metrics' pool labels `namespace`
  and `name`, so they join ARC's `gha_*` metrics). `config.metrics.port: 0` turns the
  HTTP server off, and with it the Service, the ServiceMonitor, the probes and the port.
- **Optional**: a NetworkPolicy (`networkPolicy.enabled`), the alerts
  (`prometheusRule.enabled`), the Grafana dashboard (`dashboards.enabled`), the
  finalizer-capture admission policy (`admissionPolicy.enabled`).

## Alerts

`prometheusRule.enabled` installs the rules of `files/alerts.yaml` (each can be turned
off, and its `for`, severity and threshold set, under `prometheusRule.alerts`). They
select this release's series by `job` and `namespace` as the ServiceMonitor scrapes
them; set `prometheusRule.selector` when Prometheus scrapes the pods otherwise.

| Alert | Fires when |
| --- | --- |
| SnapshotterDown | no series of the snapshotter at all (no replica runs or is scraped), 10 min |
| SnapshotterNoLeader | no replica holds the Lease, 2 min: nothing is written |
| SnapshotterDatabaseUnavailable | a replica cannot reach the database, 5 min |
| SnapshotterNoRecentCommit | the leader holds pending work and committed nothing for `seconds` (600) |
| SnapshotterQueueNearCap | the pending queue is above `ratio` (0.8) of its cap, 5 min |
| SnapshotterObjectsRejected | the database refused objects within `window` (they are in `snapshotter_rejects`) |
| SnapshotterObjectsSkipped | malformed ARC objects were skipped within `window` |
| SnapshotterLeaseErrors | Lease calls keep failing (by reason: forbidden, invalid, ...), 5 min |
| SnapshotterPollFailing | more than one poll cycle failed in 15 min, for 10 min |

Each alert is unit-tested with `promtool test rules` (`tests/alerts/alerts_test.yaml`).

## Dashboard

`dashboards.enabled` ships `files/dashboard.json` in a ConfigMap labelled
`grafana_dashboard: "1"`, which Grafana's dashboard sidecar (kube-prometheus-stack)
loads. Panels: jobs finished per pool, job duration and runner start-up p50/p95 per
pool, the pending queue and its cap, apply latency p50/p95/p99, the leader, database
availability, rejected and skipped objects, Lease errors and folded job series, watch
restarts and relists, rows written.

## Values

<!-- values -->

"""Renders config/deploy/ (the plain-manifest install) from the Helm chart.

    .venv/bin/python hack/render_manifests.py          # rewrite config/deploy/*.yaml
    .venv/bin/python hack/render_manifests.py --check  # exit 1 if they are out of date

The chart is the source: each file is `helm template` of some of its templates with
fixed values (release github-runners-snapshotter in namespace primus-lens), so that
the plain manifests and the chart cannot drift apart (tests/e2e/test_chart.py runs
the check).
"""

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "github-runners-snapshotter"
DEPLOY = REPO / "config" / "deploy"
RELEASE, NAMESPACE, KUBE_VERSION = "github-runners-snapshotter", "primus-lens", "1.35.4"
FINALIZERS = ("config.finalizer_capture.enabled=true", "admissionPolicy.enabled=true")


@dataclass(frozen=True)
class Output:
    file: str
    header: str
    templates: tuple[str, ...]
    values: tuple[str, ...] = ()
    only_names_ending: tuple[str, ...] = ()


OUTPUTS = (
    Output(
        "rbac.yaml",
        "RBAC: read-only access to the ARC resources and the kube-system namespace (the\n"
        "cluster's identity), and the Lease for leader election (get and update name the\n"
        "Lease: with a cluster_name it is github-runners-snapshotter-<cluster_name>). The\n"
        "end-to-end tests create exactly these objects and run the snapshotter with them.",
        ("templates/serviceaccount.yaml", "templates/rbac.yaml"),
    ),
    Output(
        "deployment.yaml",
        "The snapshotter: its configuration, two replicas with leader election (one writes),\n"
        "probes, a Service for /metrics and a PodDisruptionBudget. The database URL (with its\n"
        "password) comes from the Secret primus-lens-database, never from the ConfigMap.",
        (
            "templates/configmap.yaml",
            "templates/deployment.yaml",
            "templates/service.yaml",
            "templates/pdb.yaml",
        ),
    ),
    Output(
        "rbac-finalizer-capture.yaml",
        "Extra RBAC for finalizer capture (finalizer_capture.enabled: true): the snapshotter\n"
        "adds and removes its own finalizer with JSON patches. RBAC grants `patch` on whole\n"
        "EphemeralRunners; the ValidatingAdmissionPolicy (Kubernetes >= 1.30) lets the\n"
        "ServiceAccount change nothing but that finalizer. Apply with rbac.yaml.",
        ("templates/rbac.yaml", "templates/finalizer-patch-policy.yaml"),
        FINALIZERS,
        ("-finalizers", "-finalizer-patches"),
    ),
    Output(
        "finalizer-capture-policy.yaml",
        "Optional companion of finalizer capture: a MutatingAdmissionPolicy that adds the\n"
        "finalizer when ARC creates a runner, so that runners created while the snapshotter\n"
        "is down wait for it too. Kubernetes >= 1.34 with admissionregistration v1beta1.\n"
        "Restrict the binding to the runner namespaces (matchResources.namespaceSelector).\n"
        "To uninstall finalizer capture: delete this policy FIRST, then run\n"
        "`snapshotter finalizers remove`, then turn the option off.",
        ("templates/admission-policy.yaml",),
        FINALIZERS,
    ),
)


def helm_binary() -> Path:
    build = REPO / "hack" / "testbin" / "build.sh"
    result = subprocess.run([str(build), "helm"], capture_output=True, text=True, check=True)
    return Path(result.stdout.strip().splitlines()[-1]) / "helm"


def render(helm: Path, output: Output) -> str:
    command = [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    command += ["--kube-version", KUBE_VERSION]
    for value in output.values:
        command += ["--set", value]
    for template in output.templates:
        command += ["--show-only", template]
    rendered = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    if output.only_names_ending:
        documents = [
            d for d in documents if d["metadata"]["name"].endswith(output.only_names_ending)
        ]
    header = "".join(f"# {line}\n" for line in output.header.splitlines())
    generated = "# Generated from charts/github-runners-snapshotter by hack/render_manifests.py.\n"
    body = yaml.safe_dump_all(documents, sort_keys=False, explicit_start=False)
    return header + generated + body.replace("\n...\n", "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 on drift")
    args = parser.parse_args()
    helm = helm_binary()
    stale = []
    for output in OUTPUTS:
        path = DEPLOY / output.file
        text = render(helm, output)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(output.file)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date with the chart: {', '.join(stale)} (run hack/render_manifests.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

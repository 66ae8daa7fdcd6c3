"""jobWorkflowRef -> workflow path, file and branch."""

import pytest

from snapshotter.model.workflow_ref import WorkflowRef, parse_workflow_ref


@pytest.mark.parametrize(
    ("value", "path", "file", "ref", "branch"),
    [
        (
            "acme/api/.github/workflows/ci.yaml@refs/heads/main",
            ".github/workflows/ci.yaml",
            "ci.yaml",
            "refs/heads/main",
            "main",
        ),
        (
            "acme/api/.github/workflows/ci.yaml@refs/heads/feature/x",
            ".github/workflows/ci.yaml",
            "ci.yaml",
            "refs/heads/feature/x",
            "feature/x",
        ),
        (
            "acme/api/.github/workflows/ci.yaml@refs/pull/481/merge",
            ".github/workflows/ci.yaml",
            "ci.yaml",
            "refs/pull/481/merge",
            "pull/481/merge",
        ),
        (
            "acme/api/.github/workflows/release.yml@refs/tags/v1",
            ".github/workflows/release.yml",
            "release.yml",
            "refs/tags/v1",
            "refs/tags/v1",
        ),
        (
            "acme/api/.github/workflows/ci.yaml@0123abcd",
            ".github/workflows/ci.yaml",
            "ci.yaml",
            "0123abcd",
            "0123abcd",
        ),
        ("acme/api/.github/workflows/ci.yaml", ".github/workflows/ci.yaml", "ci.yaml", None, None),
        (
            ".github/workflows/ci.yaml@refs/heads/main",
            ".github/workflows/ci.yaml",
            "ci.yaml",
            "refs/heads/main",
            "main",
        ),
        ("acme/api/other/ci.yaml@refs/heads/main", None, None, "refs/heads/main", "main"),
        ("", None, None, None, None),
    ],
)
def test_parse(
    value: str, path: str | None, file: str | None, ref: str | None, branch: str | None
) -> None:
    parsed = parse_workflow_ref(value)
    assert parsed == WorkflowRef(path=path, file=file, ref=ref)
    assert parsed.branch == branch

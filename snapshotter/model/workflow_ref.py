"""`status.jobWorkflowRef` split into the parts a run row needs.

The listener writes `<owner>/<repo>/.github/workflows/<file>@<ref>`; for a reusable
workflow the owner/repo name the called workflow's repository, so the job's own
repository comes from `status.jobRepositoryName`, never from here.
"""

from dataclasses import dataclass

_WORKFLOWS_DIR = ".github/workflows/"


@dataclass(frozen=True, slots=True)
class WorkflowRef:
    path: str | None  # ".github/workflows/ci.yaml"
    file: str | None  # "ci.yaml"
    ref: str | None  # "refs/heads/main"

    @property
    def branch(self) -> str | None:
        """The ref as a branch name: `refs/heads/X` -> X, `refs/pull/N/merge` -> pull/N/merge."""
        if self.ref is None:
            return None
        if self.ref.startswith("refs/heads/"):
            return self.ref.removeprefix("refs/heads/")
        if self.ref.startswith("refs/pull/"):
            return self.ref.removeprefix("refs/")
        return self.ref


def parse_workflow_ref(value: str) -> WorkflowRef:
    """Split a workflow ref; parts that cannot be found are None."""
    location, at, ref = value.rpartition("@")
    if not at:
        location, ref = value, ""
    if location.startswith(_WORKFLOWS_DIR):
        path: str | None = location
    else:
        start = location.find("/" + _WORKFLOWS_DIR)
        path = location[start + 1 :] if start >= 0 else None
    file = path.rsplit("/", 1)[-1] if path else None
    return WorkflowRef(path=path or None, file=file or None, ref=ref or None)

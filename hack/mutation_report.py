"""The score of the last `make mutation` run, per module, from `mutmut results`.

Prints one Markdown table row per mutated module: mutants, killed, survived,
timeout, no tests (no selected test runs the function), not checked (outside the
run), and the share killed among those checked. Then the survivors, one a line.
"""

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATUSES = ("killed", "survived", "timeout", "no tests", "not checked")


def results() -> list[tuple[str, str]]:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            rows.append((name, status))
    return rows


def module_of(name: str) -> str:
    """`snapshotter.diff.compute.x_f__mutmut_3` -> `snapshotter/diff/compute.py`."""
    parts = name.split(".")
    while parts and not parts[-1].startswith("x"):
        parts.pop()
    return "/".join(parts[:-1]) + ".py"


def main() -> int:
    rows = results()
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors = []
    for name, status in rows:
        by_module[module_of(name)][status] += 1
        if status == "survived":
            survivors.append(name)
    header = ("module", "mutants", *STATUSES, "killed %")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    total: Counter[str] = Counter()
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        print(row(module, counts))
    print(row("all", total))
    print()
    for name in survivors:
        print("survived:", name)
    return 0


def row(module: str, counts: Counter[str]) -> str:
    checked = sum(counts[s] for s in STATUSES if s != "not checked")
    share = f"{100 * counts['killed'] / checked:.1f}" if checked else "-"
    cells = [module, str(sum(counts.values())), *(str(counts[s]) for s in STATUSES), share]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    sys.exit(main())

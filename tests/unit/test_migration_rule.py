"""Every migration only expands the schema, unless it is a marked contract step.

The rule and the marker are described in tests/support/migration_rule.py and in the
README ("Upgrading"). Known exceptions from before the rule are listed here with
their reason; an entry that no longer breaks the rule fails too, so the list stays
exact.
"""

from pathlib import Path

import pytest

from tests.support.migration_rule import contract_reason, violations

VERSIONS = Path(__file__).resolve().parents[2] / "snapshotter" / "db" / "migrations" / "versions"
MIGRATIONS = sorted(VERSIONS.glob("*.py"))

# Migrations released before the rule, which do break it, and why that was accepted.
HISTORICAL_EXCEPTIONS = {
    "20261129_0004_lens_runner_columns.py": (
        "moves GitHub's run id from workflow_run_id to job_workflow_run_id and clears the"
        " old column (Lens's processor owns it); released before rolling upgrades were"
        " supported: the 0003 version had to stop before 0004 was applied"
    ),
}


def test_the_migrations_are_found() -> None:
    assert len(MIGRATIONS) >= 6
    assert set(HISTORICAL_EXCEPTIONS) <= {p.name for p in MIGRATIONS}


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_each_migration_only_expands_unless_marked(path: Path) -> None:
    source = path.read_text()
    found = [str(v) for v in violations(source)]
    if contract_reason(source) is not None:
        return  # a contract step, released once no older version can run
    if path.name in HISTORICAL_EXCEPTIONS:
        assert found, f"{path.name} no longer breaks the rule: drop it from the exceptions"
        return
    assert not found, (
        f"{path.name} is not expand-only ({'; '.join(found)}); move this to a later "
        "migration marked CONTRACT = '<reason>' (README, Upgrading)"
    )


EXPANDING = """
def _columns():
    return [sa.Column("a", sa.Integer()), sa.Column("b", sa.Text(), nullable=False,
            server_default=sa.text("''"))]

def upgrade():
    adoption.add_columns("t", _columns())
    op.create_table("n", sa.Column("id", sa.Integer(), nullable=False))
    op.create_index("ix", "t", ["a"])
    op.execute("UPDATE t SET a = 0 WHERE a IS NULL")

def downgrade():
    op.drop_index("ix")
    op.drop_table("n")
    op.execute("ALTER TABLE t DROP COLUMN a")
"""


def test_expanding_is_allowed_and_downgrade_is_not_checked() -> None:
    assert violations(EXPANDING) == []


@pytest.mark.parametrize(
    "body",
    [
        'op.drop_column("t", "a")',
        'op.drop_table("t")',
        'op.drop_index("ix", table_name="t")',
        'op.drop_constraint("uq", "t")',
        'op.rename_table("t", "u")',
        'op.alter_column("t", "a", new_column_name="b")',
        'op.alter_column("t", "a", nullable=False)',
        'op.alter_column("t", "a", type_=sa.Text())',
        'op.add_column("t", sa.Column("c", sa.Integer(), nullable=False))',
        'adoption.add_columns("t", [sa.Column("c", sa.Integer(), nullable=False)])',
        'adoption.drop_added_columns("t", ["a"])',
        'op.execute("ALTER TABLE t DROP COLUMN a")',
        'op.execute("ALTER TABLE t RENAME COLUMN a TO b")',
        'op.execute("ALTER TABLE t ALTER COLUMN a SET NOT NULL")',
        'op.execute("ALTER TABLE t ALTER COLUMN a TYPE text")',
        'op.execute(sa.text("DELETE FROM t WHERE a IS NULL"))',
        'op.execute(f"UPDATE {TABLE} SET b = a, a = NULL")',
        'op.get_bind().execute(sa.text("DROP INDEX ix"))',
        "_helper()",
    ],
)
def test_destructive_operations_are_found(body: str) -> None:
    source = f"""
def _helper():
    op.drop_column("t", "x")

def upgrade():
    {body}
"""
    assert violations(source), body


def test_a_contract_step_names_its_reason() -> None:
    assert contract_reason('CONTRACT = "drops t.a, unused since 0009"\n') is not None
    assert contract_reason('CONTRACT = ""\n') is None  # a reason is required
    assert contract_reason("CONTRACT = True\n") is None
    assert contract_reason(EXPANDING) is None

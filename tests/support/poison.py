"""Rows a PostgreSQL database refuses for their data, as a shared database with rules
of its own may, and transactions it fails midway, as a database in trouble does.

`arm` installs triggers on the snapshotter's tables that consult a small table
(`test_poison`): a row whose name contains a listed tag (runner sets, runner states,
workflow runs), or a history row with at least a listed number of current runners,
is refused with the listed SQLSTATE: a trigger's RAISE (P0001), a check violation
(23514) or a data exception (22023), which are data errors, not outages. A sequence
fails the next transactions that write runner states with a serialization failure
(40001), which is an outage: retried, never isolated.
"""

from sqlalchemy import Engine, text

ERRCODES = ("P0001", "23514", "22023")
_NAMED = {
    "github_runner_sets": "name",
    "github_ephemeral_runner_states": "name",
    "github_workflow_runs": "workload_name",
}
HISTORY = "github_runner_set_history"


def arm(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE test_poison (tbl TEXT NOT NULL, tag TEXT, "
                "at_least INT, errcode TEXT NOT NULL)"
            )
        )
        for table, column in _NAMED.items():
            conn.execute(
                text(
                    f"CREATE FUNCTION poison_{table}() RETURNS trigger AS $$ "
                    "DECLARE code TEXT; BEGIN "
                    "SELECT p.errcode INTO code FROM test_poison p "
                    f"WHERE p.tbl = TG_TABLE_NAME AND strpos(NEW.{column}, p.tag) > 0 LIMIT 1; "
                    "IF code IS NOT NULL THEN "
                    f"RAISE EXCEPTION 'refused by a rule of this database: %', NEW.{column} "
                    "USING ERRCODE = code; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION poison_{table}()"
                )
            )
        conn.execute(
            text(
                f"CREATE FUNCTION poison_{HISTORY}() RETURNS trigger AS $$ "
                "DECLARE code TEXT; BEGIN "
                "SELECT p.errcode INTO code FROM test_poison p "
                "WHERE p.tbl = TG_TABLE_NAME AND NEW.current_runners >= p.at_least LIMIT 1; "
                "IF code IS NOT NULL THEN "
                "RAISE EXCEPTION 'too many runners for this database: %', NEW.current_runners "
                "USING ERRCODE = code; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER poison BEFORE INSERT ON {HISTORY} "
                f"FOR EACH ROW EXECUTE FUNCTION poison_{HISTORY}()"
            )
        )
        conn.execute(text("CREATE SEQUENCE commit_failures MINVALUE -1000 START 0"))
        conn.execute(
            text(
                "CREATE FUNCTION fail_commit() RETURNS trigger AS $$ BEGIN "
                "IF nextval('commit_failures') < 0 THEN "
                "RAISE EXCEPTION 'injected commit failure' "
                "USING ERRCODE = 'serialization_failure'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER fail_commit BEFORE INSERT OR UPDATE ON "
                "github_ephemeral_runner_states FOR EACH ROW EXECUTE FUNCTION fail_commit()"
            )
        )


def refuse_named(engine: Engine, table: str, tag: str, errcode: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO test_poison (tbl, tag, errcode) VALUES (:t, :tag, :code)"),
            {"t": table, "tag": tag, "code": errcode},
        )


def refuse_history(engine: Engine, at_least: int, errcode: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO test_poison (tbl, at_least, errcode) VALUES (:t, :n, :code)"),
            {"t": HISTORY, "n": at_least, "code": errcode},
        )


def cure(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM test_poison"))


def fail_next_commits(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"SELECT setval('commit_failures', {-n - 1})"))

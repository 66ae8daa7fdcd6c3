"""④ APPLY: the only package that speaks SQL (SQLAlchemy 2, Alembic)."""

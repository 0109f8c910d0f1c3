"""The AI domain's tables (owned by llm_service, kept in `common/` with every other model so
one Alembic history covers the whole schema)."""

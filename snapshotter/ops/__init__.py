"""OPERATIONS: what lets a platform team run the engine: metrics, health probes and
their HTTP endpoints, leader election. Below the orchestration (sync/ reports into
it), above the adapters; it writes no rows and lists nothing."""

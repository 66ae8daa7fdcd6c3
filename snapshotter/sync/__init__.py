"""⑤ ORCHESTRATION: sequences list -> parse -> diff -> apply; knows no HTTP or SQL."""

"""③ DIFF: persisted state + observations + `now` -> the rows to write. Pure."""

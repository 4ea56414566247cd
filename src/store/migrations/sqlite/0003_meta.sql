-- Small named values every instance shares: `sessions_valid_after` (admin sessions issued
-- before it are over, set by signing out) and `write_probe` (rewritten by readiness checks to
-- prove that a commit can succeed; `pad` makes the write as large as a small conversation).
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    pad BLOB
);

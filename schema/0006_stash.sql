-- wledger ledger schema, migration 0006: the stash's log.
-- A migration is never edited once it has shipped; later changes go in a new numbered file.

-- `refs/stash` joins HEAD and the branches in the reflog, as in git: the stash is a log with no
-- ref, its newest entry `stash@{0}`, each entry a commit on the HEAD it was made on. SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt with its rows and their order.
CREATE TABLE reflog6 (
    seq         INTEGER PRIMARY KEY,
    ref         TEXT    NOT NULL CHECK (ref = 'HEAD' OR ref = 'refs/stash' OR ref GLOB 'refs/heads/?*'),
    old         TEXT    REFERENCES "commit"(id),
    new         TEXT    NOT NULL REFERENCES "commit"(id),
    time        INTEGER NOT NULL,                                       -- unix seconds
    message     TEXT    NOT NULL
) STRICT;
INSERT INTO reflog6(seq, ref, old, new, time, message) SELECT seq, ref, old, new, time, message FROM reflog;
DROP TABLE reflog;
ALTER TABLE reflog6 RENAME TO reflog;
CREATE INDEX reflogRef ON reflog(ref, seq);

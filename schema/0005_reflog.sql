-- wledger ledger schema, migration 0005: the reflog.
-- A migration is never edited once it has shipped; later changes go in a new numbered file.

-- Every move of HEAD and of each branch, in order (git's reflog): `old` is where the ref pointed
-- before (NULL: it did not exist), `new` where it points after, `message` what moved it
-- ("commit: ...", "checkout: moving from main to 3f2a...", "reset: moving to HEAD~1").
-- `REF@{N}` resolves through these rows, so a commit a hard reset left behind stays reachable.
-- A branch's rows go when the branch is deleted and follow it when it is renamed; HEAD's stay.
-- Ledgers older than this migration start with an empty log.
CREATE TABLE reflog (
    seq         INTEGER PRIMARY KEY,
    ref         TEXT    NOT NULL CHECK (ref = 'HEAD' OR ref GLOB 'refs/heads/?*'),
    old         TEXT    REFERENCES "commit"(id),
    new         TEXT    NOT NULL REFERENCES "commit"(id),
    time        INTEGER NOT NULL,                                       -- unix seconds
    message     TEXT    NOT NULL
) STRICT;
CREATE INDEX reflogRef ON reflog(ref, seq);

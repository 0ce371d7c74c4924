-- wledger ledger schema, migration 0003: the bisect session.
-- A migration is never edited once it has shipped; later changes go in a new numbered file.

-- The bisect in progress (at most one). `origHead` is where `bisect reset` returns: a full branch
-- ref ('refs/heads/NAME') or a commit id (detached HEAD). With `noCheckout` the work tree is left
-- alone and candidates are materialized for `bisect run`. `current` is the commit being tested.
CREATE TABLE bisectSession (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    origHead    TEXT    NOT NULL,
    noCheckout  INTEGER NOT NULL CHECK (noCheckout IN (0, 1)),
    current     TEXT    REFERENCES "commit"(id),
    startedAt   INTEGER NOT NULL
) STRICT;

-- Every mark of the session in order (`bisect log` is written from these rows). The latest `bad`
-- is the bad end; every `good` bounds the range from below; `skip`ped commits are not tested.
CREATE TABLE bisectMark (
    seq         INTEGER PRIMARY KEY,
    verdict     TEXT    NOT NULL CHECK (verdict IN ('bad', 'good', 'skip')),
    target      TEXT    NOT NULL REFERENCES "commit"(id)
) STRICT;

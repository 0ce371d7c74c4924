-- wledger ledger schema, migration 0002: cached health evaluations.
-- A migration is never edited once it has shipped; later changes go in a new numbered file.

-- One task's result on one set of weights. Weights are identified by the commit's tree hash, so
-- commits with identical weights (e.g. a revert of a revert) share results. `spec` is the task's
-- canonical description (source, mode, shots, limit, seed; for `edits` also a hash of the
-- requests and the base tree), `evaluator` the evaluator id and version (wledger-tasks/N, or
-- external:NAME@sha256-of-command). `result` is the TaskResult JSON (metrics with n and stderr).
CREATE TABLE evaluation (
    tree        TEXT    NOT NULL CHECK (length(tree) = 64),
    task        TEXT    NOT NULL,
    spec        TEXT    NOT NULL,
    evaluator   TEXT    NOT NULL,
    result      TEXT    NOT NULL CHECK (json_valid(result)),
    createdAt   INTEGER NOT NULL,
    PRIMARY KEY (tree, spec, evaluator)
) STRICT;

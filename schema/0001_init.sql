-- wledger ledger schema, migration 0001: objects, tensor versions, commits, manifests, refs.
-- A migration is never edited once it has shipped; later changes go in a new numbered file.

-- Content-addressed payloads: id = sha256 (hex) of the decoded payload bytes.
CREATE TABLE object (
    id          TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 64),
    size        INTEGER NOT NULL CHECK (size >= 0),          -- decoded payload bytes
    storedSize  INTEGER NOT NULL CHECK (storedSize >= 0)     -- sum of chunk data bytes
) STRICT, WITHOUT ROWID;

-- Objects are split into independently encoded chunks of at most 64 MiB.
CREATE TABLE objectChunk (
    object      TEXT    NOT NULL REFERENCES object(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL CHECK (seq >= 0),
    codec       INTEGER NOT NULL CHECK (codec IN (0, 1, 2)), -- 0 raw, 1 zstd, 2 byte-shuffled zstd
    elementSize INTEGER NOT NULL CHECK (elementSize BETWEEN 1 AND 16),
    rawSize     INTEGER NOT NULL CHECK (rawSize >= 0),
    data        BLOB    NOT NULL,
    PRIMARY KEY (object, seq)
) STRICT;

-- Every distinct tensor content ever committed, and how to rebuild it:
-- a keyframe (base IS NULL: the object holds the raw bytes) or an exact patch from `base`.
CREATE TABLE tensorVersion (
    hash        TEXT    PRIMARY KEY NOT NULL CHECK (length(hash) = 64), -- sha256 of the tensor bytes
    fingerprint TEXT    NOT NULL CHECK (length(fingerprint) = 32),      -- XXH3-128 of the tensor bytes
    byteCount   INTEGER NOT NULL CHECK (byteCount >= 0),
    elementSize INTEGER NOT NULL CHECK (elementSize BETWEEN 1 AND 16),
    base        TEXT    REFERENCES tensorVersion(hash),
    object      TEXT    NOT NULL REFERENCES object(id),
    encoding    TEXT    NOT NULL CHECK (encoding IN ('keyframe', 'sparse-xor', 'sparse-values', 'dense-xor', 'low-rank')),
    depth       INTEGER NOT NULL CHECK (depth >= 0),                  -- patches between here and a keyframe
    CHECK ((base IS NULL) = (encoding = 'keyframe')),
    CHECK ((base IS NULL) = (depth = 0))
) STRICT, WITHOUT ROWID;

CREATE TABLE "commit" (
    id          TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 64),
    parent      TEXT    REFERENCES "commit"(id),
    generation  INTEGER NOT NULL CHECK (generation >= 0),             -- 0 for the base snapshot
    kind        TEXT    NOT NULL CHECK (kind IN ('base', 'edit', 'revert', 'prune', 'restrain')),
    message     TEXT    NOT NULL,
    author      TEXT    NOT NULL,
    time        INTEGER NOT NULL,                                       -- unix seconds
    method      TEXT,
    request     TEXT    CHECK (request IS NULL OR json_valid(request)),
    parameters  TEXT    CHECK (parameters IS NULL OR json_valid(parameters)),
    tree        TEXT    NOT NULL CHECK (length(tree) = 64),            -- sha256 of the full manifest
    fullManifest INTEGER NOT NULL CHECK (fullManifest IN (0, 1)),      -- rows below list every tensor
    CHECK ((kind = 'base') = (parent IS NULL)),
    CHECK (kind <> 'base' OR fullManifest = 1)
) STRICT, WITHOUT ROWID;
CREATE INDEX commitParent ON "commit"(parent);

-- Manifest rows. A commit lists the tensors it changed (with ΔW statistics against its parent);
-- every 64th generation (and the base) lists all tensors, so resolving a manifest walks at most
-- 64 commits whatever the history length.
CREATE TABLE commitTensor (
    "commit"    TEXT    NOT NULL REFERENCES "commit"(id),
    name        TEXT    NOT NULL,
    file        TEXT    NOT NULL,
    dtype       TEXT    NOT NULL,
    shape       TEXT    NOT NULL CHECK (json_valid(shape)),
    hash        TEXT    NOT NULL REFERENCES tensorVersion(hash),
    changed     INTEGER CHECK (changed IS NULL OR changed >= 0),       -- NULL: carried over, not changed here
    l1          REAL,                                                   -- Σ|ΔW| against the parent
    frobenius   REAL,                                                   -- ‖ΔW‖F
    maxAbs      REAL,                                                   -- max |ΔW|
    baseNorm    REAL,                                                   -- ‖W_parent‖F
    storedBytes INTEGER,                                                -- bytes this commit added for it
    PRIMARY KEY ("commit", name)
) STRICT, WITHOUT ROWID;

-- Files of the work tree per commit (same sparse rule as commitTensor). For safetensors files
-- the object is the exact file prefix (length + header JSON); for side files the whole content.
-- object IS NULL records a side file removed in that commit.
CREATE TABLE commitFile (
    "commit"    TEXT    NOT NULL REFERENCES "commit"(id),
    path        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('safetensors', 'side')),
    object      TEXT    REFERENCES object(id),
    size        INTEGER NOT NULL CHECK (size >= 0),
    PRIMARY KEY ("commit", path)
) STRICT, WITHOUT ROWID;

-- HEAD, branches (refs/heads/*), tags (refs/tags/*). HEAD is symbolic (a branch) or detached.
CREATE TABLE ref (
    name        TEXT    PRIMARY KEY NOT NULL,
    target      TEXT    REFERENCES "commit"(id),
    symbolic    TEXT,
    CHECK ((target IS NULL) <> (symbolic IS NULL)),
    CHECK (name = 'HEAD' OR name GLOB 'refs/heads/?*' OR name GLOB 'refs/tags/?*'),
    CHECK (symbolic IS NULL OR (name = 'HEAD' AND symbolic GLOB 'refs/heads/?*'))
) STRICT, WITHOUT ROWID;

-- Stat information of work-tree files known to equal a commit's version, so `status` and
-- `commit` skip rehashing untouched files (like git's index).
CREATE TABLE worktreeFile (
    path        TEXT    PRIMARY KEY NOT NULL,
    "commit"    TEXT    NOT NULL REFERENCES "commit"(id),
    size        INTEGER NOT NULL,
    mtimeNs     INTEGER NOT NULL,
    ctimeNs     INTEGER NOT NULL,
    inode       INTEGER NOT NULL,
    device      INTEGER NOT NULL,
    recordedNs  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Derived data: extreme singular values of 2-D tensor versions (σmax, σmin), computed on demand
-- by diff/show/restrain and kept because a content hash never changes.
CREATE TABLE tensorSpectrum (
    hash        TEXT    PRIMARY KEY NOT NULL REFERENCES tensorVersion(hash),
    rows        INTEGER NOT NULL CHECK (rows > 0),
    cols        INTEGER NOT NULL CHECK (cols > 0),
    sigmaMax    REAL    NOT NULL CHECK (sigmaMax >= 0),
    sigmaMin    REAL    NOT NULL CHECK (sigmaMin >= 0)
) STRICT, WITHOUT ROWID;

CREATE TABLE meta (
    key         TEXT    PRIMARY KEY NOT NULL,
    value       TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

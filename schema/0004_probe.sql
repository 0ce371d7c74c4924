-- wledger ledger schema, migration 0004: a probe per tensor version.
-- A migration is never edited once it has shipped; later changes go in a new numbered file.

-- XXH3-64 of four 64-byte windows of the version's bytes, at evenly spaced offsets (TensorIO's
-- `Probe`). A scan of the work tree compares it with the tensor's first, reading a few pages of
-- each tensor, and so learns which tensors an edit rewrote before it has hashed them all (a
-- commit starts encoding those at once). Equal probes prove nothing: the fingerprint decides.
-- NULL for versions recorded before this migration; their tensors are found by hashing alone.
ALTER TABLE tensorVersion ADD COLUMN probe INTEGER;

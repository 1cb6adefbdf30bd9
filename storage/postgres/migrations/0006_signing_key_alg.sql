-- Signing keys of more than one algorithm: ES256 as before, and RS256,
-- which OpenID Connect and RFC 9068 require servers to support. Rows from
-- before are ES256 keys, and so is every row an instance older than this
-- migration inserts while it still runs: the default keeps its INSERT,
-- which names no alg, correct.
ALTER TABLE dcr_signing_keys
    ADD COLUMN alg text NOT NULL DEFAULT 'ES256';

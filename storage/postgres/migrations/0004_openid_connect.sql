-- OpenID Connect: the nonce of an authorization request travels with its
-- code into the ID token, and the time the person authenticated travels
-- with the code and then the refresh tokens (auth_time). Rows from before
-- have neither: '' and 0 mean "none sent" and "unknown".
ALTER TABLE dcr_auth_codes
    ADD COLUMN nonce     text   NOT NULL DEFAULT '',
    ADD COLUMN auth_time bigint NOT NULL DEFAULT 0;
ALTER TABLE dcr_refresh_tokens
    ADD COLUMN auth_time bigint NOT NULL DEFAULT 0;

-- Issue 10: how a client came to be, when it was last used, the settings
-- only the operator may set, and initial access tokens made at run time.
ALTER TABLE dcr_clients
    ADD COLUMN origin       text   NOT NULL DEFAULT '',
    ADD COLUMN last_used_at bigint NOT NULL DEFAULT 0,
    ADD COLUMN settings     jsonb  NOT NULL DEFAULT '{}';

CREATE TABLE dcr_initial_access_tokens (
    id          text PRIMARY KEY,
    hash        bytea NOT NULL UNIQUE,
    description text NOT NULL,
    created_at  bigint NOT NULL,
    -- 0: never expires.
    expires_at  bigint NOT NULL,
    -- 0: unlimited.
    max_uses    integer NOT NULL,
    uses        integer NOT NULL
);

-- caddy-dcr's records. Every table is named dcr_*, so the schema can share
-- a database with others. Times are unix seconds (bigint), as in the
-- records; hashes are SHA-256 digests (bytea), never the secrets.

-- Ids that are listed in order compare bytewise (COLLATE "C"), whatever
-- the database's locale, as in every other backend.
CREATE TABLE dcr_clients (
    id                      text COLLATE "C" PRIMARY KEY,
    issued_at               bigint NOT NULL,
    secret_hash             bytea,
    secret_expires_at       bigint NOT NULL DEFAULT 0,
    -- NULL for a client without one; a registration token finds one client.
    registration_token_hash bytea UNIQUE,
    -- RFC 7591 client metadata, extension members included.
    metadata                jsonb NOT NULL
);

CREATE TABLE dcr_signing_keys (
    id         text PRIMARY KEY,
    private    bytea NOT NULL,
    created_at bigint NOT NULL
);

CREATE TABLE dcr_server_secrets (
    name   text PRIMARY KEY,
    secret bytea NOT NULL
);

CREATE TABLE dcr_grants (
    subject     text NOT NULL,
    client_id   text COLLATE "C" NOT NULL,
    id          text NOT NULL,
    client_name text NOT NULL,
    scope       text NOT NULL,
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL,
    -- Token families of grants made before grants had IDs.
    families    text[],
    PRIMARY KEY (subject, client_id)
);
CREATE INDEX dcr_grants_client_id ON dcr_grants (client_id);

CREATE TABLE dcr_refresh_tokens (
    hash       bytea PRIMARY KEY,
    client_id  text NOT NULL,
    subject    text NOT NULL,
    scope      text NOT NULL,
    audience   text NOT NULL,
    issued_at  bigint NOT NULL,
    expires_at bigint NOT NULL,
    family     text NOT NULL,
    grant_id   text NOT NULL,
    used       boolean NOT NULL,
    used_at    bigint NOT NULL,
    reuses     integer NOT NULL,
    claims     jsonb
);
CREATE INDEX dcr_refresh_tokens_client_id ON dcr_refresh_tokens (client_id);
CREATE INDEX dcr_refresh_tokens_family ON dcr_refresh_tokens (family);
CREATE INDEX dcr_refresh_tokens_grant_id ON dcr_refresh_tokens (grant_id) WHERE grant_id <> '';
CREATE INDEX dcr_refresh_tokens_expires_at ON dcr_refresh_tokens (expires_at);

CREATE TABLE dcr_auth_codes (
    hash         bytea PRIMARY KEY,
    client_id    text NOT NULL,
    redirect_uri text NOT NULL,
    challenge    text NOT NULL,
    scope        text NOT NULL,
    audience     text NOT NULL,
    subject      text NOT NULL,
    expires_at   bigint NOT NULL,
    family       text NOT NULL,
    grant_id     text NOT NULL,
    used         boolean NOT NULL,
    used_at      bigint NOT NULL,
    claims       jsonb
);
CREATE INDEX dcr_auth_codes_expires_at ON dcr_auth_codes (expires_at);

-- What the token gate must refuse until the last token it covers expires.
CREATE TABLE dcr_revocations (
    kind  text NOT NULL,
    key   text NOT NULL,
    until bigint NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX dcr_revocations_until ON dcr_revocations (until);

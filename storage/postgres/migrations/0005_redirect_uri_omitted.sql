-- RFC 6749 §4.1.3: the token request must repeat redirect_uri only if the
-- authorization request sent it. A code records when it did not. The
-- default, false, requires it: rows from before, and rows an instance
-- still running the old schema inserts, keep the old, stricter rule.
ALTER TABLE dcr_auth_codes
    ADD COLUMN redirect_uri_omitted boolean NOT NULL DEFAULT false;

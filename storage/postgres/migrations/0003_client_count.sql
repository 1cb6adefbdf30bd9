-- Issue 10: the number of clients, kept by a trigger, so that max_clients
-- costs registration one row read rather than a count of the table.
--
-- Instances still on the old schema may insert clients while this runs: the
-- lock makes them wait until the trigger is there, so that none is inserted
-- between the count and the trigger (and none is counted twice). It is the
-- lock CREATE TRIGGER takes, taken before the count rather than after.
LOCK TABLE dcr_clients IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE dcr_client_count (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    n        bigint NOT NULL
);
INSERT INTO dcr_client_count (n) SELECT count(*) FROM dcr_clients;

CREATE FUNCTION dcr_count_clients() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE dcr_client_count SET n = n + 1;
    ELSE
        UPDATE dcr_client_count SET n = n - 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER dcr_clients_count AFTER INSERT OR DELETE ON dcr_clients
    FOR EACH ROW EXECUTE FUNCTION dcr_count_clients();

-- Reaping finds clients by when they registered.
CREATE INDEX dcr_clients_issued_at ON dcr_clients (issued_at);

-- The token gate's view of disabled clients is reloaded every 30 s.
CREATE INDEX dcr_clients_disabled ON dcr_clients (id) WHERE (settings->>'disabled')::boolean;

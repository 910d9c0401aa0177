-- The change log is the source of truth: a tenant's directory at revision R is the newest snapshot at or below
-- R with every change after it applied in order. Replicas load that, then follow the log.

CREATE TABLE tenants (
    tenant_id  text PRIMARY KEY,
    -- the newest revision in the log; writers lock this row, which serialises writes to one tenant across replicas
    revision   bigint NOT NULL DEFAULT 0
);

CREATE TABLE snapshots (
    tenant_id  text   NOT NULL REFERENCES tenants,
    revision   bigint NOT NULL,
    -- groupgate.v1.Snapshot, protobuf, gzip
    data       bytea  NOT NULL,
    PRIMARY KEY (tenant_id, revision)
);

CREATE TABLE changes (
    tenant_id   text        NOT NULL REFERENCES tenants,
    revision    bigint      NOT NULL,
    -- the revision replaced the whole tenant (ImportSnapshot): its snapshot is in snapshots
    replaced    boolean     NOT NULL DEFAULT false,
    -- groupgate.v1.WatchResponse (revision and changes), protobuf
    changes     bytea,
    request_id  text,
    committed   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, revision)
);

-- WriteChanges retries: a request id is written once per tenant.
CREATE UNIQUE INDEX changes_request_id ON changes (tenant_id, request_id) WHERE request_id IS NOT NULL;

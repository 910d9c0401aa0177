-- Retention (store/postgres/retention.go) prunes the log below the newest snapshot and deletes superseded
-- snapshots once they are older than the retention period: a replica that has just read one keeps a grace
-- period to read the log after it. Existing snapshots count as written now.
ALTER TABLE snapshots ADD COLUMN created timestamptz NOT NULL DEFAULT now();

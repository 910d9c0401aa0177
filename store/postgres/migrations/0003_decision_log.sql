-- The decision log (SPEC §14, serve --decision-log postgres): one row per decision, written in batches by the
-- decision log's writer (store/postgres/decisionlog.go), read by `groupgate decisions` and the explorer, and
-- pruned after --decision-log-retain-for by the pruner of the change log (retention.go).
-- decision_id is a UUIDv7: the primary key grows with time, so inserts append to the index.
CREATE TABLE decision_log (
	decision_id   uuid PRIMARY KEY,
	time          timestamptz NOT NULL,
	tenant_id     text NOT NULL,
	revision      bigint NOT NULL,
	rpc           text NOT NULL,
	group_id      text NOT NULL DEFAULT '',
	member_id     text NOT NULL DEFAULT '',
	label_id      text NOT NULL DEFAULT '',
	actor_id      text NOT NULL DEFAULT '',
	action        text NOT NULL DEFAULT '',
	verdict       text NOT NULL,
	entra_verdict text NOT NULL,
	violations    text[] NOT NULL DEFAULT '{}',
	warnings      text[] NOT NULL DEFAULT '{}',
	caller        jsonb,
	trace_id      text NOT NULL DEFAULT '',
	latency_ms    double precision NOT NULL
);
-- Pruning and --since scan by time; the explorer and --group / --actor ask for one object's newest.
CREATE INDEX decision_log_time ON decision_log (time);
CREATE INDEX decision_log_group ON decision_log (tenant_id, group_id, time DESC);
CREATE INDEX decision_log_actor ON decision_log (actor_id, time DESC);

-- The findings webhook's delivered position (serve --findings-webhook, SPEC §16; store/postgres/findingsink.go):
-- per tenant, the newest revision whose events the webhook has all taken, and the findings it was told are open
-- (each as last sent, a serialized groupgate.v1.Finding), so that a restarted or another replica resumes there, or
-- sends only the difference when the server cannot replay from there. Updated once per delivered revision: a
-- row per opened finding inserted, per resolved one deleted.
CREATE TABLE findings_webhook_position (
	tenant_id text PRIMARY KEY,
	revision  bigint NOT NULL,
	updated   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE findings_webhook_open (
	tenant_id  text NOT NULL,
	finding_id text NOT NULL,
	finding    bytea NOT NULL,
	PRIMARY KEY (tenant_id, finding_id)
);

-- psql script: the generic plans PostgreSQL keeps for the store's statements on the request
-- and confirm paths (crates/postgres/src/statements.rs with the default names), as a pooled
-- connection runs them once they are prepared. The growth phase of benches/load.sh prints
-- their scan lines and fails on any sequential scan.
SET plan_cache_mode = force_generic_plan;
PREPARE load_record(text) AS
SELECT u."id"::text AS user_id, coalesce(u."email"::text, '') AS email, coalesce(u."password_hash"::text, '') <> '' AS has_password, p.token_digest, p.issued_at, p.expires_at, coalesce(p.sent_at, '{}') AS sent_at, coalesce(p.revision, 0) AS revision FROM "users" u LEFT JOIN "password_setup_pending" p ON p.user_id = u."id" WHERE u."id" = $1::text;
PREPARE issue(text, bigint, bytea, timestamptz, timestamptz, timestamptz[]) AS
WITH eligible AS ( SELECT u."id" AS user_id FROM "users" u WHERE u."id" = $1::text AND coalesce(u."password_hash"::text, '') = '' FOR SHARE OF u ), updated AS ( UPDATE "password_setup_pending" p SET token_digest = $3, issued_at = $4, expires_at = $5, sent_at = $6, revision = p.revision + 1 FROM eligible e WHERE p.user_id = e.user_id AND p.revision = $2 RETURNING 1 ), inserted AS ( INSERT INTO "password_setup_pending" (user_id, token_digest, issued_at, expires_at, sent_at, revision) SELECT e.user_id, $3, $4, $5, $6, 1 FROM eligible e WHERE $2 = 0 ON CONFLICT (user_id) DO NOTHING RETURNING 1 ) SELECT (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted) AS written;
PREPARE find_by_token(bytea) AS
SELECT u."id"::text AS user_id, coalesce(u."email"::text, '') AS email, coalesce(u."password_hash"::text, '') <> '' AS has_password, p.token_digest, p.issued_at, p.expires_at, coalesce(p.sent_at, '{}') AS sent_at, coalesce(p.revision, 0) AS revision FROM "password_setup_pending" p JOIN "users" u ON u."id" = p.user_id WHERE p.token_digest = $1;
PREPARE complete(text, bytea, text) AS
WITH owner AS ( SELECT u."id" AS user_id, coalesce(u."password_hash"::text, '') = '' AS has_no_password FROM "users" u WHERE u."id" = $1::text FOR UPDATE OF u ), consumed AS ( UPDATE "password_setup_pending" p SET token_digest = NULL, issued_at = NULL, expires_at = NULL, revision = p.revision + 1 FROM owner o WHERE p.user_id = o.user_id AND p.token_digest = $2 AND o.has_no_password RETURNING p.user_id ), stored AS ( UPDATE "users" u SET "password_hash" = $3 FROM consumed c WHERE u."id" = c.user_id RETURNING 1 ) SELECT EXISTS (SELECT 1 FROM stored) AS completed, EXISTS (SELECT 1 FROM owner WHERE NOT has_no_password) AS password_set;
\echo load
EXPLAIN (COSTS OFF) EXECUTE load_record('5');
\echo issue
EXPLAIN (COSTS OFF) EXECUTE issue('5', 1, sha256('x'), now(), now(), ARRAY[now()]);
\echo find_by_token
EXPLAIN (COSTS OFF) EXECUTE find_by_token(sha256('x'));
\echo complete
EXPLAIN (COSTS OFF) EXECUTE complete('5', sha256('x'), 'hash');

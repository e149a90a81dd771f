-- pgbench script: what the PostgreSQL store sends for one PUT /user/password that issues a
-- link (crates/postgres/src/statements.rs with the default names): read the user's record,
-- then issue under the revision read. Client c takes the users first + c + k * clients for
-- k = 1, 2, ..., each once, as the server's rows do (pass -D first=.. -D clients=.. -D k=0).
-- The store binds the digest and instants from Rust; here PostgreSQL computes them.
\set k :k + 1
\set user_id :first + :client_id + :k * :clients
SELECT u."id"::text AS user_id, coalesce(u."email"::text, '') AS email, coalesce(u."password_hash"::text, '') <> '' AS has_password, p.token_digest, p.issued_at, p.expires_at, coalesce(p.sent_at, '{}') AS sent_at, coalesce(p.revision, 0) AS revision FROM "users" u LEFT JOIN "password_setup_pending" p ON p.user_id = u."id" WHERE u."id" = :user_id::text \gset
WITH eligible AS ( SELECT u."id" AS user_id FROM "users" u WHERE u."id" = :user_id::text AND coalesce(u."password_hash"::text, '') = '' FOR SHARE OF u ), updated AS ( UPDATE "password_setup_pending" p SET token_digest = sha256(random()::text::bytea), issued_at = now(), expires_at = now() + interval '24 hours', sent_at = ARRAY[now()], revision = p.revision + 1 FROM eligible e WHERE p.user_id = e.user_id AND p.revision = :revision RETURNING 1 ), inserted AS ( INSERT INTO "password_setup_pending" (user_id, token_digest, issued_at, expires_at, sent_at, revision) SELECT e.user_id, sha256(random()::text::bytea), now(), now() + interval '24 hours', ARRAY[now()], 1 FROM eligible e WHERE :revision = 0 ON CONFLICT (user_id) DO NOTHING RETURNING 1 ) SELECT (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted) AS written;

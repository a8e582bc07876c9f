import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Crypto-shredding (src/log/Vault.ts): a key per customer, wrapped; `erase` sets it to NULL. Events
 * gain the id of the key their personal fields are sealed under and the sealed box; earlier events
 * are not rewritten, and keep what they hold in `data`. mailroom_secrets holds the root that wraps
 * the keys when MAILROOM_SECRET_KEY is unset, and a check value that tells a changed key.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE customer_keys (
      id           uuid PRIMARY KEY,
      customer_id  uuid NOT NULL,
      key          bytea,
      created_at   timestamptz NOT NULL DEFAULT now(),
      erased_at    timestamptz
    );
    CREATE UNIQUE INDEX customer_keys_live ON customer_keys (customer_id) WHERE key IS NOT NULL;
    CREATE INDEX customer_keys_by_customer ON customer_keys (customer_id);

    CREATE TABLE mailroom_secrets (
      name        text PRIMARY KEY,
      value       bytea NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now()
    );

    ALTER TABLE events ADD COLUMN key_id uuid;
    ALTER TABLE events ADD COLUMN sealed bytea;
    -- Sealed bytes are random to a compressor: storing them plainly saves the attempt.
    ALTER TABLE events ALTER COLUMN sealed SET STORAGE EXTERNAL;
    CREATE INDEX events_by_key ON events (key_id) WHERE key_id IS NOT NULL;
  `)
})

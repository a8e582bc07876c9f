import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * RETENTION_DAYS keeps the raw bytes that a recent event still names: finding those events must not
 * read the whole log once per batch it drops.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE INDEX events_by_raw_sha256 ON events ((data->>'rawSha256'), occurred_at)
      WHERE (data->>'rawSha256') IS NOT NULL;
    CREATE INDEX raw_messages_by_age ON raw_messages (stored_at);
  `)
})

import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Bodies and event payloads over 2 kB are compressed on write; PostgreSQL's default (pglz) made the
 * server spend about a third more CPU on a backlog than lz4 does. PGlite and servers built without
 * lz4 keep pglz: the schema is the same either way.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    DO $$
    BEGIN
      ALTER TABLE events ALTER COLUMN data SET COMPRESSION lz4;
      ALTER TABLE messages ALTER COLUMN text SET COMPRESSION lz4;
      ALTER TABLE messages ALTER COLUMN html SET COMPRESSION lz4;
      ALTER TABLE messages ALTER COLUMN attachments SET COMPRESSION lz4;
    EXCEPTION WHEN feature_not_supported THEN
      RAISE NOTICE 'lz4 is not available here; text stays compressed with pglz';
    END $$
  `)
})

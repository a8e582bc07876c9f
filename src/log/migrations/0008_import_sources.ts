import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Which file each imported mail came from: a folder's `import:` mailbox numbers its mail by sorted
 * file name, and this keeps the name and hash beside the number, so that a re-import of a folder
 * that has since changed is noticed instead of taken for mail already imported.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE import_sources (
      mailbox     text NOT NULL,
      uid         bigint NOT NULL,
      file        text NOT NULL,
      raw_sha256  text NOT NULL,
      size        bigint NOT NULL,
      imported_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (mailbox, uid)
    )
  `)
})

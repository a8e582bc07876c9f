import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Events a consumer set aside because the broker refused them for their size or content. The log
 * keeps each whole; this says which never reached the bus, and `status` counts them.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE dead_letters (
      event_id  uuid PRIMARY KEY,
      seq       bigint NOT NULL,
      consumer  text NOT NULL,
      reason    text NOT NULL,
      at        timestamptz NOT NULL DEFAULT now()
    )
  `)
})

import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/** What `status` shows of a running instance: operational state, not history, so not in the log. */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE mailbox_health (
      mailbox        text PRIMARY KEY,
      instance       text NOT NULL,
      state          text NOT NULL,
      logins         bigint NOT NULL DEFAULT 0,
      last_error     text,
      last_error_at  timestamptz,
      updated_at     timestamptz NOT NULL DEFAULT now()
    )
  `)
})

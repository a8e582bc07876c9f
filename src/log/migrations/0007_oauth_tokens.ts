import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * The newest OAuth2 refresh token per mailbox account, AES-256-GCM encrypted with a key derived from
 * MAILROOM_SECRET_KEY: Microsoft rotates refresh tokens on use, and a restart must not fall back to
 * one that the provider has since replaced.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE oauth_tokens (
      account            text PRIMARY KEY,
      refresh_token_enc  bytea NOT NULL,
      updated_at         timestamptz NOT NULL DEFAULT now()
    )
  `)
})

import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * REPLY_RATE_LIMIT counts a sender's mail the LLM failed on (ReplyFailed at stage `agent`, which has
 * no ReplyIntended) as well as its answers: each such mail costs the LLM's retries, and a sender's
 * many must not hold everyone's answers back. Counting them per sender needs its own index.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE INDEX events_agent_failures_by_customer ON events ((data->>'customerId'), occurred_at)
      WHERE type = 'ReplyFailed' AND data->>'stage' = 'agent';
  `)
})

import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * One intent and one outcome per answered mail, enforced by the database: two responders that both
 * got past the lock still cannot both send. The other indexes serve the rate limit and the subject
 * token lookup.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE UNIQUE INDEX events_one_reply_intent ON events ((data->>'emailEventId'))
      WHERE type = 'ReplyIntended';
    CREATE UNIQUE INDEX events_one_reply_outcome ON events ((data->>'emailEventId'))
      WHERE type IN ('ReplySent', 'ReplySkipped', 'ReplyFailed');
    CREATE INDEX events_replies_by_email ON events ((data->>'emailEventId'))
      WHERE type IN ('ReplyIntended', 'ReplySent', 'ReplySkipped', 'ReplyFailed');
    CREATE INDEX events_replies_sent_by_customer ON events ((data->>'customerId'), occurred_at)
      WHERE type = 'ReplySent';
    CREATE INDEX events_replies_sent_by_recipient ON events ((data->>'to'), occurred_at)
      WHERE type = 'ReplySent';
    CREATE INDEX tickets_by_token ON tickets (mailbox, left(replace(id::text, '-', ''), 12));
  `)
})

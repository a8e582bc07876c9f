import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * A failed answer may be asked for again (`mailroom replies retry`, ReplyRetried): each retry of a
 * mail has one intent and one outcome of its own, so the database's one-intent, one-outcome rule is
 * per mail and retry (events recorded before carry no `retry`, and are retry 0), and one retry is
 * asked for once. `mailroom replies`, `status` and `replies retry` read the outcomes of a span of
 * time: by time, not by a walk over every outcome the log has held in its years.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    DROP INDEX events_one_reply_intent;
    CREATE UNIQUE INDEX events_one_reply_intent ON events ((data->>'emailEventId'), (coalesce(data->>'retry', '0')))
      WHERE type = 'ReplyIntended';
    DROP INDEX events_one_reply_outcome;
    CREATE UNIQUE INDEX events_one_reply_outcome ON events ((data->>'emailEventId'), (coalesce(data->>'retry', '0')))
      WHERE type IN ('ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed');
    CREATE UNIQUE INDEX events_one_reply_retry ON events ((data->>'emailEventId'), (data->>'retry'))
      WHERE type = 'ReplyRetried';
    CREATE INDEX events_reply_outcomes_by_time ON events (occurred_at)
      WHERE type IN ('ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed', 'ReplyRetried');
    DROP INDEX events_replies_by_email;
    CREATE INDEX events_replies_by_email ON events ((data->>'emailEventId'))
      WHERE type IN ('ReplyIntended', 'ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed', 'ReplyRetried');
  `)
})

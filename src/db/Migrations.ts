import { Migrator } from "@effect/sql"
import { Effect, Layer } from "effect"
import events from "./migrations/0001_events.js"
import replies from "./migrations/0002_replies.js"
import mailboxHealth from "./migrations/0003_mailbox_health.js"
import lz4Text from "./migrations/0004_lz4_text.js"

export const migrations = Migrator.fromRecord({
  "0001_events": events,
  "0002_replies": replies,
  "0003_mailbox_health": mailboxHealth,
  "0004_lz4_text": lz4Text
})

/** Brings the schema up to date before anything else touches the database. */
export const MigrationsLive = Layer.effectDiscard(
  Migrator.make({})({ loader: migrations }).pipe(Effect.withSpan("Migrations.run"))
)

import { Migrator, SqlClient } from "@effect/sql"
import { Effect, Layer, Option } from "effect"
import { DatabaseConfig } from "../config/Config.js"
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

const migrate = Migrator.make({})({ loader: migrations })

/** Any number that no other advisory lock of mailroom's uses ("migr"). */
const MIGRATION_LOCK = 0x6d696772

/**
 * Instances started together on a new database would race to create the migrations table, and the
 * loser would either fail or go on before the schema exists: on PostgreSQL one migrates while the
 * others wait on a session lock. The embedded database has one process per data folder already.
 */
const oneAtATime = Effect.gen(function*() {
  const { url } = yield* DatabaseConfig
  if (Option.isNone(url)) return yield* migrate
  const sql = yield* SqlClient.SqlClient
  return yield* Effect.scoped(Effect.gen(function*() {
    const connection = yield* sql.reserve
    yield* Effect.acquireRelease(
      connection.execute("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK], undefined),
      () => connection.execute("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK], undefined).pipe(Effect.ignore)
    )
    return yield* migrate
  }))
})

/** Brings the schema up to date before anything else touches the database. */
export const MigrationsLive = Layer.effectDiscard(oneAtATime.pipe(Effect.withSpan("Migrations.run")))

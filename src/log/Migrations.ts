import { SqlClient } from "@effect/sql"
import { Array as Arr, Data, Effect, Layer, Option, Order } from "effect"
import { DatabaseConfig } from "../config/Config.js"
import { inTransaction } from "./Sql.js"
import events from "./migrations/0001_events.js"
import mailboxHealth from "./migrations/0002_mailbox_health.js"
import replies from "./migrations/0003_replies.js"
import lz4Text from "./migrations/0004_lz4_text.js"
import replySafety from "./migrations/0005_reply_safety.js"
import deadLetters from "./migrations/0006_dead_letters.js"
import oauthTokens from "./migrations/0007_oauth_tokens.js"
import importSources from "./migrations/0008_import_sources.js"
import rawRetention from "./migrations/0009_raw_retention.js"
import customerKeys from "./migrations/0010_customer_keys.js"
import answeredByPerson from "./migrations/0011_answered_by_person.js"
import agentFailures from "./migrations/0012_agent_failures.js"
import replyRetries from "./migrations/0013_reply_retries.js"
import alreadyAnswered from "./migrations/0014_already_answered.js"

/** Numbered in the order they were written; a database knows each by its name, the part after the number. */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_events": events,
  "0002_mailbox_health": mailboxHealth,
  "0003_replies": replies,
  "0004_lz4_text": lz4Text,
  "0005_reply_safety": replySafety,
  "0006_dead_letters": deadLetters,
  "0007_oauth_tokens": oauthTokens,
  "0008_import_sources": importSources,
  "0009_raw_retention": rawRetention,
  "0010_customer_keys": customerKeys,
  "0011_answered_by_person": answeredByPerson,
  "0012_agent_failures": agentFailures,
  "0013_reply_retries": replyRetries,
  "0014_already_answered": alreadyAnswered
}

export interface Migration {
  readonly key: string
  readonly number: number
  readonly name: string
  readonly run: Effect.Effect<void, unknown, SqlClient.SqlClient>
}

export const ordered: ReadonlyArray<Migration> = Arr.sort(
  Object.entries(migrations).map(([key, run]) => ({
    key,
    number: Number.parseInt(key, 10),
    name: key.slice(key.indexOf("_") + 1),
    run
  })),
  Order.mapInput(Order.number, (migration: Migration) => migration.number)
)

export class MigrationFailed extends Data.TaggedError("MigrationFailed")<{
  readonly migration: string
  readonly cause: unknown
}> {
  override get message() {
    return `migration ${this.migration} failed: ${reasons(this.cause)}`
  }
}

/**
 * The database records migrations this version does not have: a newer mailroom migrated it. This one
 * could misread what the newer one writes (an event kind, or a reason, it does not know), so it stops
 * before touching anything.
 */
export class DatabaseIsNewer extends Data.TaggedError("DatabaseIsNewer")<{ readonly unknown: ReadonlyArray<string> }> {
  override get message() {
    return `the database was migrated by a newer mailroom (it has ${this.unknown.join(", ")}, which this version does not know): ` +
      "run that version or a later one; every instance sharing a database must run the same version"
  }
}

/**
 * The database holds mailroom's data, and this version brings migrations it has not had: a command
 * other than a start leaves the schema as it is, since instances of the version before may still be
 * running on it (they would misread what the migrations let this version write).
 */
export class MigrationsPending extends Data.TaggedError("MigrationsPending")<{ readonly pending: ReadonlyArray<string> }> {
  override get message() {
    const named = this.pending.length > 3 ? `${this.pending.slice(0, 3).join(", ")} and ${this.pending.length - 3} more` : this.pending.join(", ")
    return `the database has not had this version's migrations (${named}): stop every instance of the older version, then start this one, ` +
      "which applies them; no other command changes the schema"
  }
}

/** SqlError says only "Failed to execute statement"; the server's words are in its cause. */
const reasons = (cause: unknown): string =>
  cause instanceof Error
    ? cause.cause === undefined ? cause.message : `${cause.message}: ${reasons(cause.cause)}`
    : String(cause)

/**
 * @effect/sql's Migrator ran only the numbers above the latest it had recorded, so 0003_replies
 * (numbered 0002 then, though written after 0003_mailbox_health) never ran on a database migrated in
 * between. Names are recorded instead; a database the Migrator kept gets its names from the
 * Migrator's table, once, in the transaction that creates this one.
 */
const ledger = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    const [tables] = yield* sql<{ ledger: string | null; legacy: string | null }>`
      SELECT to_regclass('mailroom_migrations')::text AS ledger, to_regclass('effect_sql_migrations')::text AS legacy`
    if (tables!.ledger !== null) return
    yield* sql`CREATE TABLE mailroom_migrations (
      name        text PRIMARY KEY,
      applied_at  timestamptz NOT NULL DEFAULT now()
    )`
    if (tables!.legacy === null) return
    yield* sql`INSERT INTO mailroom_migrations (name, applied_at)
      SELECT name, created_at FROM effect_sql_migrations ON CONFLICT DO NOTHING`
  }).pipe(inTransaction(sql))

const known = new Set(ordered.map((migration) => migration.name))

/**
 * Each missing migration in number order, in one transaction with the row that records it. A new
 * event kind, or a new value in an event's fields, comes with a migration (one that may only record
 * itself), so that an older instance refuses the database rather than misread it.
 */
const migrate = (applying: Applying) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const applies = applying === "all" || (yield* isNew(sql))
  if (applies) yield* ledger(sql)
  // Only a database this command leaves as it is can lack the ledger (one from before it existed).
  const hasLedger = applies || (yield* sql<{ ledger: boolean }>`SELECT to_regclass('mailroom_migrations') IS NOT NULL AS ledger`)[0]!.ledger
  const recorded = hasLedger ? yield* sql<{ name: string }>`SELECT name FROM mailroom_migrations` : []
  const applied = new Set(recorded.map((row) => row.name))
  const unknown = [...applied].filter((name) => !known.has(name)).sort()
  if (unknown.length > 0) return yield* new DatabaseIsNewer({ unknown })
  const pending = ordered.filter((migration) => !applied.has(migration.name))
  if (!applies && pending.length > 0) return yield* new MigrationsPending({ pending: pending.map((migration) => migration.key) })
  if (pending.length === 0) return
  // All of them in one transaction, each with the row that records it: a failure leaves the schema
  // as this version found it, not half-way, and a new database commits once instead of 14 times.
  yield* Effect.forEach(pending, (migration) =>
    migration.run.pipe(
      Effect.mapError((cause) => new MigrationFailed({ migration: migration.key, cause })),
      Effect.zipRight(sql`INSERT INTO mailroom_migrations (name) VALUES (${migration.name})`)
    ), { discard: true }).pipe(inTransaction(sql))
  for (const migration of pending) yield* Effect.logInfo(`Applied migration ${migration.key}`)
}).pipe(Effect.annotateLogs({ service: "Migrations" }))

/**
 * "all": a start brings the schema up to date. "new databases only": the other commands set up a
 * database that holds nothing of mailroom's yet (a first `check`), and otherwise only read the ledger.
 */
type Applying = "all" | "new databases only"

/** Nothing of mailroom's in it: no ledger, neither runner's, and no log. */
const isNew = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ fresh: boolean }>`SELECT to_regclass('mailroom_migrations') IS NULL AND to_regclass('effect_sql_migrations') IS NULL
      AND to_regclass('events') IS NULL AS fresh`,
    ([row]) => row!.fresh
  )

/** Any number that no other advisory lock of mailroom's uses ("migr"). */
const MIGRATION_LOCK = 0x6d696772

/**
 * Instances started together on a new database would race to create the migrations table, and the
 * loser would either fail or go on before the schema exists: on PostgreSQL one migrates while the
 * others wait on a session lock. The embedded database has one process per data folder already.
 */
const oneAtATime = (applying: Applying) => Effect.gen(function*() {
  const { url } = yield* DatabaseConfig
  if (Option.isNone(url)) return yield* migrate(applying)
  const sql = yield* SqlClient.SqlClient
  return yield* Effect.scoped(Effect.gen(function*() {
    const connection = yield* sql.reserve
    yield* Effect.acquireRelease(
      connection.execute("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK], undefined),
      () => connection.execute("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK], undefined).pipe(Effect.ignore)
    )
    return yield* migrate(applying)
  }))
})

/** Brings the schema up to date before anything else touches the database: a start's. */
export const MigrationsLive = Layer.effectDiscard(oneAtATime("all").pipe(Effect.withSpan("Migrations.run")))

/**
 * The other commands' (`check`, `status`, `replies`, `export`, `erase`, …): a new database is set up,
 * an existing one must have had this version's migrations already (MigrationsPending).
 */
export const MigrationsCheckedLive = Layer.effectDiscard(oneAtATime("new databases only").pipe(Effect.withSpan("Migrations.check")))

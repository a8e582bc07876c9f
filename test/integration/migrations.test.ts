import { Migrator, SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Cause, Context, Effect, Layer, Logger } from "effect"
import { CommandDatabaseLive, DatabaseLive } from "../../src/Layers.js"
import { describeFailure } from "../../src/cli/Fatal.js"
import { DatabaseIsNewer, migrations, MigrationsPending, ordered } from "../../src/log/Migrations.js"
import { SqlLive } from "../../src/log/Sql.js"
import events from "../../src/log/migrations/0001_events.js"
import mailboxHealth from "../../src/log/migrations/0002_mailbox_health.js"
import replies from "../../src/log/migrations/0003_replies.js"
import lz4Text from "../../src/log/migrations/0004_lz4_text.js"
import { PostgresServer } from "../support/postgres.js"
import type { Backend } from "../support/stack.js"
import { databaseEnv } from "../support/stack.js"
import { configLayer } from "../unit/layers.js"

type Env = Record<string, string>

/** The database alone, as @effect/sql's Migrator, mailroom's runner until now, found it. */
const onDatabase = (env: Env) => <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(SqlLive.pipe(Layer.provide(configLayer(env)))), Effect.scoped)

/** The Migrator with the migrations, and their numbers, of an earlier commit. */
const migratedBy = (record: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>) =>
  Migrator.make({})({ loader: Migrator.fromRecord(record) })

const legacyRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ migration_id: number; name: string }>`SELECT migration_id, name FROM effect_sql_migrations ORDER BY migration_id`)

const text = (message: unknown) => Array.isArray(message) ? message.map(String).join(" ") : String(message)

/** Starts today's database layer once: which migrations it logged as applied, and what the schema holds then. */
const start = (env: Env, database: typeof DatabaseLive | typeof CommandDatabaseLive = DatabaseLive) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const capture = Logger.add(Logger.make(({ message }) => {
      lines.push(text(message))
    }))
    const context = yield* Layer.build(database.pipe(Layer.provide(configLayer(env)))).pipe(Effect.provide(capture))
    const sql = Context.get(context, SqlClient.SqlClient)
    const [schema] = yield* sql<{ oneReplyIntent: boolean; participants: boolean }>`
      SELECT to_regclass('events_one_reply_intent') IS NOT NULL AS "oneReplyIntent",
             to_regclass('ticket_participants') IS NOT NULL AS participants`
    const recorded = yield* sql<{ name: string }>`SELECT name FROM mailroom_migrations ORDER BY name`
    return {
      applied: lines.flatMap((line) => line.match(/^Applied migration (\S+)$/)?.slice(1) ?? []),
      ...schema!,
      recorded: recorded.map((row) => row.name)
    }
  }).pipe(Effect.scoped)

const allNames = ordered.map((migration) => migration.name).sort()
const keysExcept = (...names: ReadonlyArray<string>) =>
  ordered.filter((migration) => !names.includes(migration.name)).map((migration) => migration.key)

describe("the migrations", () => {
  it("are numbered 1, 2, 3… in list order, each under a name of its own", () => {
    expect(ordered.map((migration) => migration.number)).toEqual(ordered.map((_, i) => i + 1))
    expect(ordered.map((migration) => migration.key)).toEqual(Object.keys(migrations))
    expect(new Set(allNames).size).toBe(ordered.length)
    expect(ordered.slice(0, 5).map((migration) => migration.name)).toEqual(
      ["events", "mailbox_health", "replies", "lz4_text", "reply_safety"]
    )
  })
})

/** A fresh database of the given kind, the PostgreSQL ones made by the suite's server fixture. */
const freshEnv = (backend: Backend, label: string) => Effect.flatMap(PostgresServer, (server) => databaseEnv(backend, label, server))

describe.each<Backend>(["postgres", "pglite"])("migrating on %s", (backend) => {
  layer(PostgresServer.layer)((it) => {
    it.scoped("completes a database migrated at e9896b2, where mailbox_health was numbered 3 and replies did not exist yet", () =>
      Effect.gen(function*() {
        const env = yield* freshEnv(backend, "migrate_gap")
        const legacy = yield* onDatabase(env)(
          migratedBy({ "0001_events": events, "0003_mailbox_health": mailboxHealth }).pipe(Effect.zipRight(legacyRows))
        )
        expect(legacy).toEqual([{ migration_id: 1, name: "events" }, { migration_id: 3, name: "mailbox_health" }])

        const first = yield* start(env)
        expect(first.oneReplyIntent).toBe(true)
        expect(first.participants).toBe(true)
        expect(first.recorded).toEqual(allNames)
        expect(first.applied).toEqual(keysExcept("events", "mailbox_health"))

        const second = yield* start(env)
        expect(second.applied).toEqual([])
        expect(second.recorded).toEqual(allNames)
      }))

    it.scoped("takes over a database the previous runner migrated fully, applying only what came after", () =>
      Effect.gen(function*() {
        const env = yield* freshEnv(backend, "migrate_full")
        const legacy = yield* onDatabase(env)(
          migratedBy({ "0001_events": events, "0002_replies": replies, "0003_mailbox_health": mailboxHealth, "0004_lz4_text": lz4Text })
            .pipe(Effect.zipRight(legacyRows))
        )
        expect(legacy.map((row) => row.name)).toEqual(["events", "replies", "mailbox_health", "lz4_text"])

        const first = yield* start(env)
        expect(first.applied).toEqual(keysExcept("events", "replies", "mailbox_health", "lz4_text"))
        expect(first.applied[0]).toBe("0005_reply_safety")
        expect(first.participants).toBe(true)
        expect(first.recorded).toEqual(allNames)
        expect((yield* start(env)).applied).toEqual([])
      }))

    it.scoped("applies an upgrade's migrations all or none: one that fails leaves the schema as the version before left it", () =>
      Effect.gen(function*() {
        const env = yield* freshEnv(backend, "migrate_atomic")
        yield* onDatabase(env)(migratedBy({ "0001_events": events, "0002_replies": replies, "0003_mailbox_health": mailboxHealth, "0004_lz4_text": lz4Text }))
        // Something in the way of 0006_dead_letters, after 0005_reply_safety has run in the same start.
        yield* onDatabase(env)(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE dead_letters (in_the_way int)`))
        const failed = yield* Effect.flip(start(env))
        expect(String((failed as { message?: string }).message)).toContain("migration 0006_dead_letters failed")
        const after = yield* onDatabase(env)(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ name: string }>`SELECT name FROM mailroom_migrations ORDER BY name`.pipe(
            Effect.zipWith(sql<{ participants: boolean }>`SELECT to_regclass('ticket_participants') IS NOT NULL AS participants`, (rows, [schema]) => ({
              recorded: rows.map((row) => row.name),
              participants: schema!.participants
            }))
          )))
        // 0005 created ticket_participants and was rolled back with 0006: nothing of this start is left.
        expect(after).toEqual({ recorded: ["events", "lz4_text", "mailbox_health", "replies"], participants: false })
        yield* onDatabase(env)(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP TABLE dead_letters`))
        expect((yield* start(env)).recorded).toEqual(allNames)
      }))

    it.scoped("refuses a database a newer version migrated, applying nothing, with one line saying what to run", () =>
      Effect.gen(function*() {
        const env = yield* freshEnv(backend, "migrate_newer")
        yield* start(env)
        // What a later mailroom leaves: a migration this version has never heard of.
        yield* onDatabase(env)(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql`INSERT INTO mailroom_migrations (name) VALUES ('event_kinds_of_tomorrow')`.pipe(
            Effect.zipRight(sql`DELETE FROM mailroom_migrations WHERE name = 'customer_keys'`)
          )))
        const refused = yield* Effect.flip(start(env))
        expect(refused).toBeInstanceOf(DatabaseIsNewer)
        expect((refused as DatabaseIsNewer).unknown).toEqual(["event_kinds_of_tomorrow"])
        const fatal = describeFailure(Cause.fail(refused))
        expect(fatal?.exitCode).toBe(2)
        expect(fatal?.line).toMatch(/^the database was migrated by a newer mailroom \(it has event_kinds_of_tomorrow, .*\): run that version/)
        // Nothing was applied: the migration whose record went missing was not run again.
        const recorded = yield* onDatabase(env)(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ name: string }>`SELECT name FROM mailroom_migrations ORDER BY name`))
        expect(recorded.map((row) => row.name)).toEqual(
          [...allNames.filter((name) => name !== "customer_keys"), "event_kinds_of_tomorrow"].sort()
        )
      }))

    it.scoped("lets only a start migrate a database in use: another command sets up a new one, and stops with one line on one this version has not migrated yet", () =>
      Effect.gen(function*() {
        const env = yield* freshEnv(backend, "migrate_command")
        // A first `check` on a new database sets it up, as a start would.
        expect((yield* start(env, CommandDatabaseLive)).applied).toEqual(Object.keys(migrations))
        // What the version before this one left: every migration but the last, which only records itself.
        yield* onDatabase(env)(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DELETE FROM mailroom_migrations WHERE name = 'already_answered'`))
        const refused = yield* Effect.flip(start(env, CommandDatabaseLive))
        expect(refused).toBeInstanceOf(MigrationsPending)
        expect((refused as MigrationsPending).pending).toEqual(["0014_already_answered"])
        const fatal = describeFailure(Cause.fail(refused))
        expect(fatal?.exitCode).toBe(2)
        expect(fatal?.line).toBe(
          "the database has not had this version's migrations (0014_already_answered): stop every instance of the older version, " +
            "then start this one, which applies them; no other command changes the schema"
        )
        const recorded = yield* onDatabase(env)(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ name: string }>`SELECT name FROM mailroom_migrations ORDER BY name`))
        expect(recorded.map((row) => row.name)).toEqual(allNames.filter((name) => name !== "already_answered"))
        // The start applies it; the command then opens the database.
        expect((yield* start(env)).applied).toEqual(["0014_already_answered"])
        expect((yield* start(env, CommandDatabaseLive)).applied).toEqual([])
      }))

    it.scoped("gives a fresh database every migration, in order", () =>
      Effect.gen(function*() {
        const env = yield* freshEnv(backend, "migrate_fresh")
        const first = yield* start(env)
        expect(first.applied).toEqual(Object.keys(migrations))
        expect(first.oneReplyIntent).toBe(true)
        expect(first.participants).toBe(true)
        expect(first.recorded).toEqual(allNames)
      }))
  })
})

layer(PostgresServer.layer)("migrating on postgres", (it) => {
  it.scoped("lets one of several instances started together migrate, and the others wait for it", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("postgres", "migrate_race")
      const starts = yield* Effect.all([start(env), start(env), start(env)], { concurrency: "unbounded" })
      expect(starts.flatMap((s) => s.applied).sort()).toEqual(Object.keys(migrations))
      for (const s of starts) expect(s.recorded).toEqual(allNames)
    }))
})

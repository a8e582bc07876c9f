import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import type { SqlError } from "@effect/sql/SqlError"
import type { Scope } from "effect"
import { Context, Effect, Layer, ManagedRuntime, Redacted } from "effect"

/** The PostgreSQL server the tests use: the machine's own, unless MAILROOM_TEST_PG_URL says otherwise. */
export const serverUrl = process.env.MAILROOM_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const admin = PgClient.layer({ url: Redacted.make(serverUrl), maxConnections: 1 })

const onServer = (statement: string) =>
  Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(statement)).pipe(Effect.provide(admin), Effect.scoped)

const freshDatabaseOn = (run: (statement: string) => Effect.Effect<unknown, SqlError>) => (label: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `mailroom_${label}_${process.pid}_${Date.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9_]/g, "_")
      yield* run(`CREATE DATABASE ${name}`)
      const url = new URL(serverUrl)
      url.pathname = `/${name}`
      return { name, url: url.toString() }
    }),
    ({ name }) => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.orDie)
  )

/** A fresh database for one test file, dropped afterwards; yields its URL. */
export const freshDatabase: (label: string) => Effect.Effect<{ readonly name: string; readonly url: string }, SqlError, Scope.Scope> =
  freshDatabaseOn(onServer)

export interface Postgres {
  readonly url: string
  /** A fresh database, dropped when the scope closes; yields its URL. */
  readonly freshDatabase: typeof freshDatabase
}

/**
 * The PostgreSQL server for a suite, for `layer(PostgresServer.layer)`: its admin connection is open
 * before the first test (or the suite fails saying why) and makes every fresh database.
 */
export class PostgresServer extends Context.Tag("test/PostgresServer")<PostgresServer, Postgres>() {
  static readonly layer = Layer.effect(
    PostgresServer,
    Effect.map(PgClient.PgClient, (sql) => ({ url: serverUrl, freshDatabase: freshDatabaseOn((statement) => sql.unsafe(statement)) }))
  ).pipe(Layer.provide(admin))
}

/** A temporary data folder for the embedded PGlite database. */
export const freshDataDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-data-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)


/** Runs one statement on the database at `url`, for assertions in Promise-style tests. */
export const query = <A extends object>(url: string, statement: string): Promise<ReadonlyArray<A>> =>
  Effect.runPromise(
    Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe<A>(statement)).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })),
      Effect.scoped
    )
  )

/** `query` on one connection kept open until `close`: for a probe that asks many times a second. */
export const querySession = (url: string) => {
  const runtime = ManagedRuntime.make(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))
  return {
    query: <A extends object>(statement: string): Promise<ReadonlyArray<A>> =>
      runtime.runPromise(Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe<A>(statement))),
    close: () => runtime.dispose()
  }
}

/** A fresh database and a scratch folder for one test, both gone when its scope closes. */
export const scratchDatabaseAndFolder = (label: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => ({ db: await createDatabase(label), dir: await mkdtemp(join(tmpdir(), "mailroom-")) })),
    ({ db, dir }) =>
      Effect.promise(async () => {
        await db.drop()
        await rm(dir, { recursive: true, force: true })
      })
  )

/** A fresh database as a Promise API: `url` and `drop()`. */
export const createDatabase = async (label: string) => {
  const name = `mailroom_${label}_${process.pid}_${Date.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9_]/g, "_")
  await query(serverUrl, `CREATE DATABASE ${name}`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return { name, url: url.toString(), drop: () => query(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}

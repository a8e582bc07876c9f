import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"

/** The PostgreSQL server the tests use: the machine's own, unless MAILROOM_TEST_PG_URL says otherwise. */
export const serverUrl = process.env.MAILROOM_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const admin = PgClient.layer({ url: Redacted.make(serverUrl), maxConnections: 1 })

const onServer = (statement: string) =>
  Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(statement)).pipe(Effect.provide(admin), Effect.scoped)

/** A fresh database for one test file, dropped afterwards; yields its URL. */
export const freshDatabase = (label: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `mailroom_${label}_${process.pid}_${Date.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9_]/g, "_")
      yield* onServer(`CREATE DATABASE ${name}`)
      const url = new URL(serverUrl)
      url.pathname = `/${name}`
      return { name, url: url.toString() }
    }),
    ({ name }) => onServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.orDie)
  )

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

/** A fresh database as a Promise API: `url` and `drop()`. */
export const createDatabase = async (label: string) => {
  const name = `mailroom_${label}_${process.pid}_${Date.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9_]/g, "_")
  await query(serverUrl, `CREATE DATABASE ${name}`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return { name, url: url.toString(), drop: () => query(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}

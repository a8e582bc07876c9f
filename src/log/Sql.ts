import { existsSync } from "node:fs"
import { chmod, mkdir, mkdtemp, open as openFile, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { SqlClient } from "@effect/sql"
import type { SqlConnection } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Data, Effect, Layer, Option, Schedule, Scope } from "effect"
import { DatabaseConfig } from "../config/Config.js"
import { instanceId } from "../lib/Instance.js"

/** PostgreSQL away: pause and retry; every write is one transaction, so nothing is half-written. */
export const databaseRetry = Schedule.exponential("1 second", 2).pipe(Schedule.union(Schedule.spaced("30 seconds")))

/**
 * `sql.withTransaction`, except that a ROLLBACK that fails too (the connection is gone) stays a
 * typed SqlError for the retry policy instead of becoming a defect.
 */
export const inTransaction = (sql: SqlClient.SqlClient) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  sql.withTransaction(effect).pipe(rollbackFailureTyped)

function rollbackFailureTyped<A, E, R>(effect: Effect.Effect<A, E, R>) {
  return Effect.catchSomeDefect(effect, (defect) => defect instanceof SqlError ? Option.some(Effect.fail(defect)) : Option.none())
}

/**
 * `inTransaction`, with `first` (constant SQL, without parameters) sent in the same round trip as
 * BEGIN (or, nested, as the SAVEPOINT): a simple query may hold several statements. A round trip
 * saved where every one counts, while the append lock is held. `reading` sends a read with them
 * too, and hands its rows to the transaction's work.
 */
export const inTransactionOpenedWith = (sql: SqlClient.SqlClient, first: string) => {
  const opened = (open: (conn: SqlConnection.Connection, statement: string) => Effect.Effect<void, SqlError>) =>
    SqlClient.makeWithTransaction({
      transactionTag: SqlClient.TransactionConnection,
      spanAttributes: [["db.system.name", "postgresql"]],
      acquireConnection: Effect.flatMap(Scope.make(), (scope) => Effect.map(Scope.extend(sql.reserve, scope), (conn) => [scope, conn] as const)),
      begin: (conn) => open(conn, `BEGIN; ${first}`),
      savepoint: (conn, id) => open(conn, `SAVEPOINT effect_sql_${id}; ${first}`),
      commit: (conn) => unprepared(conn, "COMMIT"),
      rollback: (conn) => unprepared(conn, "ROLLBACK"),
      rollbackSavepoint: (conn, id) => unprepared(conn, `ROLLBACK TO SAVEPOINT effect_sql_${id}`)
    })
  const run = opened(unprepared)
  const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>) => run(effect).pipe(rollbackFailureTyped)
  /** `read`: constant SQL, without parameters, as `first` is; the rows of its last statement go to `use`. */
  const reading = <Row, A, E, R>(read: string, use: (rows: ReadonlyArray<Row>) => Effect.Effect<A, E, R>) =>
    Effect.suspend(() => {
      let rows: ReadonlyArray<Row> = []
      const withRead = opened((conn, statement) =>
        Effect.map(conn.executeUnprepared(`${statement}; ${read}`, [], undefined), (results) => {
          // A simple query of several statements answers with the rows of each.
          rows = (results as ReadonlyArray<ReadonlyArray<Row>>).at(-1) ?? []
        }))
      return withRead(Effect.suspend(() => use(rows))).pipe(rollbackFailureTyped)
    })
  return Object.assign(transaction, { reading })
}

const unprepared = (conn: SqlConnection.Connection, statement: string) => Effect.asVoid(conn.executeUnprepared(statement, [], undefined))

export class DataDirInUse extends Data.TaggedError("DataDirInUse")<{ readonly dataDir: string; readonly pid: number }> {
  override get message() {
    return `the embedded database in ${this.dataDir} is in use by process ${this.pid}: run one mailroom per data folder, or set DATABASE_URL to share a PostgreSQL server between instances`
  }
}

/** Emscripten's ErrnoError, PGlite's file system failure, is no Error: its errno is what says anything. */
const describe = (cause: unknown): string =>
  cause instanceof Error
    ? cause.message
    : typeof cause === "object" && cause !== null && "errno" in cause
    ? `file system error, errno ${String(cause.errno)}`
    : String(cause)

export class EmbeddedDatabaseFailed extends Data.TaggedError("EmbeddedDatabaseFailed")<{
  readonly dataDir: string
  readonly cause: unknown
}> {
  override get message() {
    return `could not open the embedded database in ${this.dataDir}: ${describe(this.cause)}; MAILROOM_DATA_DIR must be a writable folder of mailroom's own`
  }
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** PGlite has no lock of its own: two processes on one folder would corrupt it. */
const lockDataDir = (dataDir: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        // The folder holds every customer's mail: only mailroom's own user may enter it, whatever
        // the umask, and a folder made by an older version is closed too.
        await mkdir(dataDir, { recursive: true, mode: 0o700 })
        await chmod(dataDir, 0o700)
        const path = join(dataDir, "mailroom.pid")
        const holder = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10)
        if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) return { path, holder }
        const file = await openFile(path, "w", 0o600)
        await file.writeFile(String(process.pid))
        await file.close()
        return { path, holder: undefined }
      },
      catch: (cause) => new EmbeddedDatabaseFailed({ dataDir, cause })
    }).pipe(
      Effect.filterOrFail(
        (lock) => lock.holder === undefined,
        (lock) => new DataDirInUse({ dataDir, pid: lock.holder! })
      )
    ),
    (lock) => Effect.promise(() => rm(lock.path, { force: true }))
  )

// PGlite's WebAssembly memory only grows, so PostgreSQL's default shared buffers would stay resident
// for nothing a single-writer mailroom needs (figures: docs/performance.md).
const pgliteConf = ["shared_buffers = 16MB"]

/** An empty database that `npm run build` makes (scripts/pgdata.mjs); absent when running from src/. */
const bundledTemplate = new URL("./pgdata.tar.gz", import.meta.url)

/** Where the embedded database lives, and the marker a first start leaves until it is made. */
const embeddedPaths = (dataDir: string) => ({ dir: join(dataDir, "pglite"), marker: join(dataDir, "pglite.creating") })

/** No database in `dataDir` yet, or only one whose first start was cut short (openEmbedded makes it anew). */
const noDatabaseIn = (dataDir: string) => {
  const { dir, marker } = embeddedPaths(dataDir)
  return !existsSync(join(dir, "PG_VERSION")) || existsSync(marker)
}

/**
 * Opens the database in `dataDir`/pglite. On the first start it is unpacked from the template rather
 * than made by initdb, which in PGlite takes two more WebAssembly instances and about twice the
 * memory and time (docs/performance.md). A first start cut short
 * leaves a marker: the half-made folder holds nothing yet, so the next start makes it again.
 */
export const openEmbedded = (dataDir: string, template: URL = bundledTemplate) =>
  Effect.tryPromise({
    try: async () => {
      // Loaded only for the embedded database.
      const { PGlite } = await import("@electric-sql/pglite")
      const { dir, marker } = embeddedPaths(dataDir)
      const fresh = noDatabaseIn(dataDir)
      if (existsSync(marker)) await rm(dir, { recursive: true, force: true })
      if (fresh) {
        await mkdir(dir, { recursive: true, mode: 0o700 })
        await writeFile(marker, "", { mode: 0o600 })
      }
      const tarball = fresh && existsSync(template) ? await readFile(template) : undefined
      const db = await PGlite.create({
        dataDir: dir,
        postgresqlconf: pgliteConf,
        ...(tarball ? { loadDataDir: new Blob([tarball]) } : {})
      })
      if (fresh) await rm(marker)
      return db
    },
    catch: (cause) => new EmbeddedDatabaseFailed({ dataDir, cause })
  })

/**
 * PGlite's file system layer sets its files' modes itself (0666), whatever the umask: they are
 * narrowed to the owner when the database opens and when it closes. The folder's own 0700 keeps
 * everyone else out in between.
 */
const ownerOnly = (dataDir: string) =>
  Effect.promise(async () => {
    const entries = await readdir(dataDir, { recursive: true, withFileTypes: true })
    await Promise.all(entries.map((entry) =>
      chmod(join(entry.parentPath, entry.name), entry.isDirectory() ? 0o700 : 0o600).catch(() => undefined)
    ))
  })

/**
 * Serves an embedded PGlite database on a private Unix socket, so that the same PgClient talks to both.
 * `madeNew` runs when the folder held no database, once the new one is open.
 */
const embedded = (dataDir: string, madeNew: (dataDir: string) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    yield* lockDataDir(dataDir)
    const fresh = noDatabaseIn(dataDir)
    const { PGLiteSocketServer } = yield* Effect.promise(() => import("@electric-sql/pglite-socket"))
    const db = yield* Effect.acquireRelease(
      openEmbedded(dataDir).pipe(Effect.tap(() => ownerOnly(dataDir))),
      (db) => Effect.promise(() => db.close()).pipe(Effect.zipRight(ownerOnly(dataDir)))
    )
    const socketDir = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-pg-"))),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
    )
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const server = new PGLiteSocketServer({ db, path: join(socketDir, ".s.PGSQL.5432"), maxConnections: 1 })
          await server.start()
          return server
        },
        catch: (cause) => new EmbeddedDatabaseFailed({ dataDir, cause })
      }),
      (server) => Effect.promise(() => server.stop())
    )
    if (fresh) yield* madeNew(dataDir)
    return PgClient.layer({
      host: socketDir,
      port: 5432,
      username: "postgres",
      database: "postgres",
      maxConnections: 1,
      applicationName: "mailroom"
    })
  })

const sqlOn = (madeNew: (dataDir: string) => Effect.Effect<void>) =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const config = yield* DatabaseConfig
      if (Option.isSome(config.url)) {
        return PgClient.layer({ url: config.url.value, applicationName: `mailroom ${instanceId}`, maxConnections: config.poolSize })
      }
      return yield* embedded(resolve(config.dataDir), madeNew)
    })
  )

/** PostgreSQL from DATABASE_URL, else the embedded database under MAILROOM_DATA_DIR: a start's, which makes it the first time. */
export const SqlLive = sqlOn(() => Effect.void)

/**
 * The same for the other commands (`status`, `replies`, `export`, `check`, …). They set up a new
 * database too, but one run from the wrong folder would then report an empty mailbox as if all were
 * well: they say that the database is new, and where mailroom looked.
 */
export const CommandSqlLive = sqlOn((dataDir) =>
  Effect.logWarning(
    `There was no database in ${dataDir}, so this is a new, empty one: mailroom has not run with this data folder. If it keeps its database elsewhere, set MAILROOM_DATA_DIR (or DATABASE_URL) to it.`
  )
)

import { existsSync } from "node:fs"
import { mkdir, mkdtemp, open, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { Worker } from "node:worker_threads"
import type { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Data, Effect, Layer, Option, Schedule } from "effect"
import { DatabaseConfig } from "../Config.js"
import { instanceId } from "../Instance.js"

/** PostgreSQL away: pause and retry; every write is one transaction, so nothing is half-written. */
export const databaseRetry = Schedule.exponential("1 second", 2).pipe(Schedule.union(Schedule.spaced("30 seconds")))

/**
 * `sql.withTransaction`, except that a ROLLBACK that fails too (the connection is gone) stays a
 * typed SqlError for the retry policy instead of becoming a defect.
 */
export const inTransaction = (sql: SqlClient.SqlClient) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  sql.withTransaction(effect).pipe(
    Effect.catchSomeDefect((defect) => defect instanceof SqlError ? Option.some(Effect.fail(defect)) : Option.none())
  )

export class DataDirInUse extends Data.TaggedError("DataDirInUse")<{ readonly dataDir: string; readonly pid: number }> {
  override get message() {
    return `the embedded database in ${this.dataDir} is in use by process ${this.pid}: run one mailroom per data folder, or set DATABASE_URL to share a PostgreSQL server between instances`
  }
}

export class EmbeddedDatabaseFailed extends Data.TaggedError("EmbeddedDatabaseFailed")<{
  readonly dataDir: string
  readonly cause: unknown
}> {
  override get message() {
    return `could not open the embedded database in ${this.dataDir}: ${String(this.cause)}; MAILROOM_DATA_DIR must be a writable folder of mailroom's own`
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
        await mkdir(dataDir, { recursive: true })
        const path = join(dataDir, "mailroom.pid")
        const holder = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10)
        if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) return { path, holder }
        const file = await open(path, "w")
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

// PGlite's WebAssembly memory only grows: PostgreSQL's default 128 MB of shared buffers cost about
// 145 MB of resident memory for nothing a single-writer mailroom needs.
const pgliteConf = ["shared_buffers = 16MB"]

// PGlite fails with Emscripten's ErrnoError, which is no Error: its errno is what says anything.
const initScript = `
const { parentPort, workerData } = require("node:worker_threads")
import(workerData.pglite).then(async ({ PGlite }) => {
  const db = await PGlite.create({ dataDir: workerData.dir, postgresqlconf: workerData.conf })
  await db.close()
}).catch((error) => {
  parentPort.postMessage(error instanceof Error ? error.message : error?.errno !== undefined ? "file system error, errno " + error.errno : String(error))
  process.exit(1)
})`

/**
 * The first start runs initdb in a worker thread: PGlite does it with two more WebAssembly instances
 * whose memory the process would otherwise keep for its whole life (~800 MB instead of ~300 MB).
 */
const initialize = (dataDir: string, dir: string) =>
  Effect.tryPromise({
    try: async () => {
      if (existsSync(join(dir, "PG_VERSION")) || typeof import.meta.resolve !== "function") return
      const worker = new Worker(initScript, {
        eval: true,
        workerData: { pglite: import.meta.resolve("@electric-sql/pglite"), dir, conf: pgliteConf }
      })
      let failure = "no reason given"
      worker.once("message", (message: string) => (failure = message))
      await new Promise<void>((resolve, reject) => {
        worker.once("error", reject)
        worker.once("exit", (code) => code === 0 ? resolve() : reject(new Error(`initdb failed (${failure})`)))
      })
    },
    catch: (cause) => new EmbeddedDatabaseFailed({ dataDir, cause })
  })

/** Serves an embedded PGlite database on a private Unix socket, so that the same PgClient talks to both. */
const embedded = (dataDir: string) =>
  Effect.gen(function*() {
    yield* lockDataDir(dataDir)
    // Loaded only for the embedded database.
    const { PGlite } = yield* Effect.promise(() => import("@electric-sql/pglite"))
    const { PGLiteSocketServer } = yield* Effect.promise(() => import("@electric-sql/pglite-socket"))
    yield* initialize(dataDir, join(dataDir, "pglite"))
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => PGlite.create({ dataDir: join(dataDir, "pglite"), postgresqlconf: pgliteConf }),
        catch: (cause) => new EmbeddedDatabaseFailed({ dataDir, cause })
      }),
      (db) => Effect.promise(() => db.close())
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
    return PgClient.layer({
      host: socketDir,
      port: 5432,
      username: "postgres",
      database: "postgres",
      maxConnections: 1,
      applicationName: "mailroom"
    })
  })

/** PostgreSQL from DATABASE_URL, else the embedded database under MAILROOM_DATA_DIR. */
export const SqlLive = Layer.unwrapScoped(
  Effect.gen(function*() {
    const config = yield* DatabaseConfig
    if (Option.isSome(config.url)) {
      return PgClient.layer({ url: config.url.value, applicationName: `mailroom ${instanceId}`, maxConnections: 4 })
    }
    return yield* embedded(resolve(config.dataDir))
  })
)

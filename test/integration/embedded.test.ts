import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdir, readdir, stat, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { PGlite } from "@electric-sql/pglite"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { openEmbedded } from "../../src/log/Sql.js"
import { childEnv, mainJs } from "../support/cli.js"
import { freshDataDir } from "../support/postgres.js"

const closing = (db: PGlite) => Effect.acquireRelease(Effect.succeed(db), (db) => Effect.promise(() => db.close()))

const tables = (db: PGlite) =>
  Effect.promise(() => db.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")).pipe(
    Effect.map((result) => result.rows.map((row) => row.name))
  )

/** A template like the one `npm run build` makes, with a table that only it has. */
const markedTemplate = (dir: string) =>
  Effect.promise(async () => {
    const db = await PGlite.create()
    await db.exec("CREATE TABLE made_from_template (id int)")
    const tarball = Buffer.from(await (await db.dumpDataDir("gzip")).arrayBuffer())
    await db.close()
    const path = join(dir, "template.tar.gz")
    await writeFile(path, tarball)
    return pathToFileURL(path)
  })

describe("the embedded database's first start", () => {
  it.scoped("unpacks the database from the template, and opens what is there on later starts", () =>
    Effect.gen(function*() {
      const dataDir = yield* freshDataDir
      const template = yield* markedTemplate(yield* freshDataDir)
      yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* closing(yield* openEmbedded(dataDir, template))
        expect(yield* tables(first)).toEqual(["made_from_template"])
        yield* Effect.promise(() => first.exec("CREATE TABLE written_later (id int)"))
      }))
      expect(existsSync(join(dataDir, "pglite.creating"))).toBe(false)
      const again = yield* closing(yield* openEmbedded(dataDir, template))
      expect((yield* tables(again)).sort()).toEqual(["made_from_template", "written_later"])
    }), 60_000)

  it.scoped("makes the database again when a first start was cut short", () =>
    Effect.gen(function*() {
      const dataDir = yield* freshDataDir
      const template = yield* markedTemplate(yield* freshDataDir)
      // What a first start killed while unpacking leaves: the marker, and a folder that looks made but is not.
      yield* Effect.promise(async () => {
        await mkdir(join(dataDir, "pglite", "base"), { recursive: true })
        await writeFile(join(dataDir, "pglite", "PG_VERSION"), "18\n")
        await writeFile(join(dataDir, "pglite.creating"), "")
      })
      const db = yield* closing(yield* openEmbedded(dataDir, template))
      expect(yield* tables(db)).toEqual(["made_from_template"])
      expect(existsSync(join(dataDir, "pglite.creating"))).toBe(false)
    }), 60_000)

  it.scoped("runs initdb when there is no template (running from src/)", () =>
    Effect.gen(function*() {
      const dataDir = yield* freshDataDir
      const db = yield* closing(yield* openEmbedded(dataDir, pathToFileURL(join(dataDir, "no-such-template.tar.gz"))))
      expect(yield* tables(db)).toEqual([])
      expect(existsSync(join(dataDir, "pglite", "PG_VERSION"))).toBe(true)
    }), 60_000)

  it.scoped("uses the template that npm run build leaves beside the bundle", () =>
    Effect.gen(function*() {
      const built = new URL("../../dist/pgdata.tar.gz", import.meta.url)
      expect(existsSync(built)).toBe(true)
      const dataDir = yield* freshDataDir
      const db = yield* closing(yield* openEmbedded(dataDir, built))
      const [row] = (yield* Effect.promise(() => db.query<{ sb: string }>("SELECT current_setting('shared_buffers') AS sb"))).rows
      expect(row).toEqual({ sb: "16MB" })
      expect(yield* tables(db)).toEqual([])
    }), 60_000)
})

describe("the embedded data folder", () => {
  it.scoped("is closed to other users and holds nothing world-writable, even under umask 000", () =>
    Effect.gen(function*() {
      const dataDir = join(yield* freshDataDir, "data")
      // `status` opens (and so creates) the embedded database without a mailbox to read.
      yield* Effect.sync(() => {
        try {
          execFileSync("sh", ["-c", `umask 000; exec "${process.execPath}" "${mainJs}" status`], {
            env: childEnv({ GMAIL_SENDER_EMAIL: "support@example.com", GMAIL_SENDER_PASSWORD: "x", IMAP_HOST: "127.0.0.1", IMAP_PORT: "1", MAILROOM_DATA_DIR: dataDir }),
            stdio: "ignore",
            timeout: 120_000
          })
        } catch {
          // The mailbox cannot be reached; the folder is what this test reads.
        }
      })
      expect(existsSync(join(dataDir, "pglite", "PG_VERSION"))).toBe(true)
      expect((yield* Effect.promise(() => stat(dataDir))).mode & 0o777).toBe(0o700)
      const entries = yield* Effect.promise(() => readdir(dataDir, { recursive: true, withFileTypes: true }))
      const writable = yield* Effect.promise(() =>
        Promise.all(entries.map(async (e) => ({ path: join(e.parentPath, e.name), mode: (await stat(join(e.parentPath, e.name))).mode })))
      )
      expect(writable.filter((f) => (f.mode & 0o002) !== 0).map((f) => f.path)).toEqual([])
    }), 150_000)
})

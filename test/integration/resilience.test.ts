import type { ChildProcess } from "node:child_process"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { collect, spawnCli } from "../support/cli.js"
import { generateCorpus } from "../support/corpus.js"
import { DovecotServer } from "../support/dovecot.js"
import { FaultProxyResource, FaultProxyServer } from "../support/faultProxy.js"
import { mail } from "../support/mails.js"
import { PostgresServer, query, serverUrl } from "../support/postgres.js"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const waitUntil = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000, context?: () => string) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${context?.().split("\n").slice(-25).join("\n") ?? ""}`)
    await sleep(100)
  }
}

const perUid = (url: string) =>
  query<{ uid: string; n: string }>(url, "SELECT uid, count(*) AS n FROM events WHERE uid IS NOT NULL GROUP BY uid ORDER BY uid::bigint")

const intakeCount = async (url: string) =>
  Number((await query<{ n: string }>(url, "SELECT count(*) AS n FROM events WHERE uid IS NOT NULL"))[0]!.n)

const recorded = async (url: string, uids: ReadonlyArray<number>) => {
  const have = new Set((await perUid(url)).map((r) => Number(r.uid)))
  return uids.every((uid) => have.has(uid))
}

/** Each UID exactly once: the whole point of the exercise. */
const expectExactlyOnce = async (url: string, uids: ReadonlyArray<number>) => {
  const rows = await perUid(url)
  expect(rows.map((r) => Number(r.uid))).toEqual([...uids])
  expect(rows.filter((r) => r.n !== "1")).toEqual([])
}

interface Running {
  readonly child: ChildProcess
  readonly output: () => string
  readonly done: ReturnType<typeof collect>
}

const start = (env: Record<string, string>, args: ReadonlyArray<string> = ["--interval", "1"]): Running => {
  const child = spawnCli(args, env)
  let stderr = ""
  child.stderr?.on("data", (chunk) => (stderr += chunk))
  return { child, output: () => stderr, done: collect(child, 600_000) }
}

/**
 * What one test runs against: the suite's Dovecot behind its fault proxy, a fresh database, and the
 * mailroom processes it starts, killed when the test ends, before its database is dropped.
 */
const testRig = (label: string) =>
  Effect.gen(function*() {
    const dovecot = yield* DovecotServer
    const proxy = yield* FaultProxyServer
    const db = yield* Effect.flatMap(PostgresServer, (postgres) => postgres.freshDatabase(label))
    const running = yield* Effect.acquireRelease(
      Effect.sync((): Array<Running> => []),
      (running) =>
        Effect.promise(async () => {
          for (const r of running.splice(0)) {
            r.child.kill("SIGKILL")
            await r.done.catch(() => undefined)
          }
        })
    )

    const env = (overrides: Record<string, string> = {}) => ({
      GMAIL_SENDER_EMAIL: dovecot.user,
      GMAIL_SENDER_PASSWORD: dovecot.password,
      IMAP_HOST: "127.0.0.1",
      IMAP_PORT: String(proxy.port),
      IMAP_TLS: "false",
      DATABASE_URL: db.url,
      IMAP_COMMAND_TIMEOUT: "3",
      AGENT: "off",
      ...overrides
    })

    const run = (overrides: Record<string, string> = {}, args?: ReadonlyArray<string>) => {
      const r = start(env(overrides), args)
      running.push(r)
      return r
    }

    return { dovecot, proxy, db, env, run }
  })

const Servers = Layer.mergeAll(
  Layer.provideMerge(FaultProxyServer.layer(DovecotServer), DovecotServer.layer()),
  PostgresServer.layer
)

layer(Servers, { excludeTestServices: true })("resilience", (it) => {
  it.scoped("a connection cut in the middle of a FETCH, a stall and a slow link: every mail exactly once", () =>
    Effect.gen(function*() {
      const { dovecot, proxy, db, run } = yield* testRig("faults")
      yield* Effect.promise(async () => {
        const uids = await dovecot.append([...generateCorpus(300, { maxAttachmentBytes: 60_000, seed: 11 })].map((m) => m.raw))
        proxy.cutAfter(400_000)
        const instance = run({ IMAP_BATCH_SIZE: "50" })
        await waitUntil("the first mails", async () => (await intakeCount(db.url)) > 0)
        proxy.stall()
        await sleep(4_000)
        proxy.resume()
        proxy.slow(5)
        await waitUntil("all mails", () => recorded(db.url, uids), 120_000)
        proxy.slow(0)
        await expectExactlyOnce(db.url, uids)
        expect(instance.output()).toMatch(/IMAP connection to 127\.0\.0\.1 failed/)
        expect(instance.output()).toContain("Recovered from ConnectionLost")
        instance.child.kill("SIGTERM")
        const exit = await instance.done
        expect(exit.code).toBe(0)
      })
    }))

  it.scoped("a wrong password: one clear line, and no tight loop of logins", () =>
    Effect.gen(function*() {
      const { proxy, run } = yield* testRig("auth")
      yield* Effect.promise(async () => {
        const before = proxy.connections
        const instance = run({ GMAIL_SENDER_PASSWORD: "wrong-password" })
        await sleep(6_000)
        const logins = proxy.connections - before
        expect(logins).toBeLessThanOrEqual(2)
        const lines = instance.output().split("\n").filter((line) => line.includes("IMAP login failed"))
        expect(lines).toHaveLength(1)
        expect(lines[0]).toContain("check GMAIL_SENDER_PASSWORD")
        expect(instance.output()).not.toContain("wrong-password")
      })
    }))

  it.scoped("two instances on one mailbox: one leads, the other stands by and takes over after kill -9", () =>
    Effect.gen(function*() {
      const { dovecot, db, run } = yield* testRig("leader")
      yield* Effect.promise(async () => {
        const a = run()
        const b = run()
        const both = () => `--- first instance\n${a.output()}\n--- second instance\n${b.output()}`
        await waitUntil("a leader", async () => /leads INBOX/.test(a.output() + b.output()), 60_000, both)
        await waitUntil("a standby", async () => /standing by/.test(a.output() + b.output()), 60_000, both)
        const first = await dovecot.append(Array.from({ length: 120 }, (_, i) => mail({ subject: `pair ${i}` })))
        await waitUntil("the first mails", () => recorded(db.url, first))
        const [leader, standby] = /leads INBOX/.test(a.output()) ? [a, b] : [b, a]
        leader.child.kill("SIGKILL")
        const second = await dovecot.append(Array.from({ length: 50 }, (_, i) => mail({ subject: `after the leader died ${i}` })))
        await waitUntil("the standby to take over", async () => /leads INBOX/.test(standby.output()), 30_000)
        await waitUntil("every mail", () => recorded(db.url, second), 60_000)
        const rows = await perUid(db.url)
        expect(rows.filter((r) => r.n !== "1")).toEqual([])
        expect(rows.map((r) => Number(r.uid))).toEqual(expect.arrayContaining([...first, ...second]))
      })
    }))

  it.scoped("PostgreSQL connections cut in the middle of a pass: nothing lost or doubled", () =>
    Effect.gen(function*() {
      const { dovecot, db, run } = yield* testRig("pgcut")
      const pgProxy = yield* FaultProxyResource(Number(new URL(serverUrl).port || 5432), new URL(serverUrl).hostname)
      yield* Effect.promise(async () => {
        const url = new URL(db.url)
        url.port = String(pgProxy.port)
        const uids = await dovecot.append([...generateCorpus(400, { maxAttachmentBytes: 40_000, seed: 5 })].map((m) => m.raw))
        const instance = run({ DATABASE_URL: url.toString(), IMAP_BATCH_SIZE: "25" })
        await waitUntil("the first batches", async () => (await intakeCount(db.url)) >= 50)
        pgProxy.refuse(true)
        pgProxy.cutAll()
        await sleep(3_000)
        pgProxy.refuse(false)
        await waitUntil("every mail", () => recorded(db.url, uids), 60_000, instance.output)
        const rows = await perUid(db.url)
        expect(rows.filter((r) => r.n !== "1")).toEqual([])
        expect(rows.map((r) => Number(r.uid))).toEqual(expect.arrayContaining(uids))
        expect(instance.output()).toMatch(/Recovered from (SqlError|LeadershipLost)/)
      })
    }))

  it.scoped("IDLE: a mail appended while idling becomes a ticket without waiting for the interval", () =>
    Effect.gen(function*() {
      const { dovecot, db, env, run } = yield* testRig("idle")
      yield* Effect.promise(async () => {
        const instance = run({}, ["--interval", "600"])
        await waitUntil("the first pass", async () => /No new emails found|Processed/.test(instance.output()))
        const baseline = await intakeCount(db.url)
        await sleep(1_500)
        const [uid] = await dovecot.append([mail({ subject: "pushed by IDLE" })])
        await waitUntil("the pushed mail", async () =>
          (await query<{ n: string }>(db.url, `SELECT count(*) AS n FROM events WHERE uid = ${uid}`))[0]!.n === "1", 30_000)
        expect(await intakeCount(db.url)).toBe(baseline + 1)
        expect(instance.output()).toContain("trigger=new mail")
        const status = await collect(spawnCli(["status", "--json"], env()))
        expect(status.code, status.stderr).toBe(0)
        const [report] = JSON.parse(status.stdout).mailboxes
        expect(report).toMatchObject({ connection: "connected", logins: 1, backlog: 0 })
        expect(report.lockHolder).toContain("mailroom")
      })
    }))
})

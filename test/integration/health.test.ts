import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, ManagedRuntime, Option } from "effect"
import { runForever } from "../../src/cli/Cli.js"
import { ImapLive } from "../../src/mailbox/Imap.js"
import { DovecotServer, freePort } from "../support/dovecot.js"
import { FaultProxyServer } from "../support/faultProxy.js"
import { mail } from "../support/mails.js"
import { sqlPipeline } from "../support/stack.js"

const pipeline = (env: Record<string, string>) => ManagedRuntime.make(sqlPipeline("postgres", "health", ImapLive, env))

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const waitUntil = async (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

/** The value of one Prometheus sample, e.g. `mailroom_emails_total{outcome="EmailReceived"}`; 0 when absent. */
const sample = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : 0
}

/** Dovecot behind a fault proxy, and mailroom running against the proxy with its health endpoints on `port`, for the suite. */
const makeHealth = Effect.gen(function*() {
  const dovecot = yield* DovecotServer
  const proxy = yield* FaultProxyServer
  const port = yield* Effect.promise(() => freePort())
  const runtime = yield* Effect.acquireRelease(
    Effect.sync(() =>
      pipeline({
        GMAIL_SENDER_EMAIL: dovecot.user,
        GMAIL_SENDER_PASSWORD: dovecot.password,
        IMAP_HOST: "127.0.0.1",
        IMAP_PORT: String(proxy.port),
        IMAP_TLS: "false",
        IMAP_CONNECT_TIMEOUT: "5",
        // Long enough that only stall detection can notice a silent connection within the test.
        IMAP_COMMAND_TIMEOUT: "120",
        IMAP_STALL_TIMEOUT: "3",
        AGENT: "off",
        HEALTH_PORT: String(port)
      })
    ),
    (runtime) => Effect.promise(() => runtime.dispose())
  )
  yield* Effect.acquireRelease(
    Effect.sync(() => runtime.runFork(runForever(Option.some(1)))),
    (running) => Effect.promise(() => runtime.runPromise(Fiber.interrupt(running)))
  )

  const get = async (path: string) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`)
    return { status: response.status, text: await response.text() }
  }
  const json = async (path: string) => {
    const { status, text } = await get(path)
    return { status, body: JSON.parse(text) as { ready?: boolean; alive?: boolean; failed: Array<string>; checks: Record<string, string> } }
  }
  const recorded = (uid: number) =>
    runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: string }>`SELECT count(*) AS n FROM events WHERE uid = ${uid}`))
      .then((rows) => rows[0]!.n === "1")

  yield* Effect.promise(() => waitUntil("the health endpoints", async () => (await get("/healthz")).status === 200))
  return { dovecot, proxy, port, get, json, recorded }
})

class Health extends Context.Tag("health.test/Health")<Health, Effect.Effect.Success<typeof makeHealth>>() {
  static readonly layer = Layer.scoped(Health, makeHealth).pipe(
    Layer.provideMerge(FaultProxyServer.layer(DovecotServer)),
    Layer.provideMerge(DovecotServer.layer())
  )
}

/** A Promise-style test body over the suite's servers. */
const withHealth = (body: (health: Health["Type"]) => Promise<void>) =>
  Effect.flatMap(Health, (health) => Effect.promise(() => body(health)))

layer(Health.layer, { excludeTestServices: true })("health endpoints against Dovecot and PostgreSQL", (it) => {
  it.effect("/readyz and /healthz answer 200 once a pass completed, and /metrics counts the mail", () =>
    withHealth(async ({ dovecot, port, get, json, recorded }) => {
      const [uid] = await dovecot.append([mail({ subject: "counted" })])
      await waitUntil("the mail", () => recorded(uid!))
      await waitUntil("readiness", async () => (await get("/readyz")).status === 200)
      const ready = await json("/readyz")
      expect(ready.body).toMatchObject({ ready: true, failed: [] })
      expect(Object.keys(ready.body.checks).sort()).toEqual(["database", "mailbox:INBOX", "outbox"])
      expect(await json("/healthz")).toMatchObject({ status: 200, body: { alive: true, failed: [] } })

      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`)
      expect(metrics.headers.get("content-type")).toContain("text/plain; version=0.0.4")
      const text = await metrics.text()
      expect(text).toContain("# TYPE mailroom_emails_total counter")
      expect(sample(text, `mailroom_emails_total{outcome="EmailReceived"}`)).toBeGreaterThanOrEqual(1)
      expect(text).toContain("# TYPE mailroom_batch_duration histogram")
      expect(text).toMatch(/^mailroom_batch_duration_bucket\{.*le="\+Inf"\} \d+$/m)
      expect(sample(text, "imap_poll_count_total")).toBeGreaterThanOrEqual(1)
    }))

  it.effect("a connection that goes silent is detected as stalled, dropped and made again; later mail is recorded", () =>
    withHealth(async ({ dovecot, proxy, get, json, recorded }) => {
      const stallsBefore = sample((await get("/metrics")).text, "mailroom_mailbox_stalls_total")
      const connectionsBefore = proxy.connections
      proxy.stall()
      try {
        await waitUntil("the stall to be detected", async () =>
          sample((await get("/metrics")).text, "mailroom_mailbox_stalls_total") > stallsBefore, 20_000)
        const unready = await json("/readyz")
        expect(unready.status).toBe(503)
        expect(unready.body.failed).toEqual(["mailbox:INBOX"])
      } finally {
        proxy.resume()
      }
      await waitUntil("a new connection", async () => proxy.connections > connectionsBefore)
      const [uid] = await dovecot.append([mail({ subject: "after the stall" })])
      await waitUntil("the mail appended after the stall", () => recorded(uid!))
      await waitUntil("readiness again", async () => (await get("/readyz")).status === 200)
      expect((await get("/healthz")).status).toBe(200)
    }))

  it.effect("/readyz turns 503 while Dovecot is down, naming the mailbox, and 200 again after it restarts; /healthz stays 200", () =>
    withHealth(async ({ dovecot, proxy, get, json, recorded }) => {
      // kill, not stop, which also deletes the folder that restart needs. A killed master leaves the
      // session's imap process behind: the proxy cuts that connection as a dying server would.
      await dovecot.kill()
      proxy.cutAll()
      await waitUntil("unreadiness", async () => (await get("/readyz")).status === 503, 15_000)
      const unready = await json("/readyz")
      expect(unready.body).toMatchObject({ ready: false, failed: ["mailbox:INBOX"] })
      expect(unready.body.checks["mailbox:INBOX"]).toMatch(/last pass completed .* ago \(due within 2s\)/)
      expect(unready.body.checks["database"]).toBe("answers")
      expect((await get("/healthz")).status).toBe(200)
      await dovecot.restart()
      await waitUntil("readiness after the restart", async () => (await get("/readyz")).status === 200, 45_000)
      const [uid] = await dovecot.append([mail({ subject: "after the restart" })])
      await waitUntil("the mail appended after the restart", () => recorded(uid!))
    }))
})

import { Effect, Fiber, Layer, ManagedRuntime, Ref } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { EventBus, makeEventBusTest } from "../../src/bus/EventBus.js"
import { Relay } from "../../src/bus/Relay.js"
import { DatabaseLive } from "../../src/Layers.js"
import { EventLog } from "../../src/log/EventLog.js"
import { runCli } from "../support/cli.js"
import type { Dovecot } from "../support/dovecot.js"
import { startDovecot } from "../support/dovecot.js"
import { mail } from "../support/mails.js"
import { createDatabase } from "../support/postgres.js"
import { configLayer } from "../unit/layers.js"

let dovecot: Dovecot

beforeAll(async () => {
  dovecot = await startDovecot()
})

afterAll(async () => {
  await dovecot?.stop()
})

describe("consumers wake through LISTEN/NOTIFY", () => {
  it("a relay in one process publishes what another process commits, with no poll in between", async () => {
    const db = await createDatabase("notify_wakeup")
    const bus = await Effect.runPromise(makeEventBusTest)
    // The backstop poll is ten minutes: only a notification can wake this relay within the test.
    const env = { DATABASE_URL: db.url, EVENT_LOG_POLL: "600" }
    const runtime = ManagedRuntime.make(
      Relay.Default.pipe(
        Layer.provide(Layer.succeed(EventBus, bus.bus)),
        Layer.provideMerge(EventLog.Live),
        Layer.provide(DatabaseLive),
        Layer.provide(configLayer(env))
      )
    )
    try {
      const relay = await runtime.runPromise(Effect.flatMap(Relay, (r) => Effect.forkDaemon(r.run)))
      // Let the relay drain the empty log and settle on its wait.
      await new Promise((resolve) => setTimeout(resolve, 1500))
      expect(await Effect.runPromise(Ref.get(bus.published))).toHaveLength(0)

      await dovecot.append([mail({ subject: "Wake the other process" })])
      const started = Date.now()
      const other = await runCli(["--once"], {
        ...env,
        GMAIL_SENDER_EMAIL: dovecot.user,
        GMAIL_SENDER_PASSWORD: dovecot.password,
        IMAP_HOST: dovecot.host,
        IMAP_PORT: String(dovecot.port),
        IMAP_TLS: "false",
        IMAP_BACKFILL: "all",
        AGENT: "off"
      })
      expect(other.code, other.stderr).toBe(0)
      expect(other.stdout).toContain("Summary: 1 received")
      let published = await Effect.runPromise(Ref.get(bus.published))
      while (published.length === 0 && Date.now() - started < 30_000) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        published = await Effect.runPromise(Ref.get(bus.published))
      }
      expect(published.map((e) => e.type)).toEqual(["EmailReceived"])
      // Well under the ten-minute backstop: the other process's commit announced itself.
      expect(Date.now() - started).toBeLessThan(30_000)
      await runtime.runPromise(Fiber.interrupt(relay))
    } finally {
      await runtime.dispose()
      await db.drop()
    }
  })
})

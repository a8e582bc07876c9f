import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer, Ref } from "effect"
import { EventBus, MemoryEventBus } from "../../src/bus/EventBus.js"
import { Relay } from "../../src/bus/Relay.js"
import { DatabaseLive } from "../../src/Layers.js"
import { EventLog } from "../../src/log/EventLog.js"
import { Vault } from "../../src/log/Vault.js"
import { runCli } from "../support/cli.js"
import { DovecotServer } from "../support/dovecot.js"
import { mail } from "../support/mails.js"
import { freshDatabase } from "../support/postgres.js"
import { configLayer } from "../unit/layers.js"

layer(DovecotServer.layer(), { excludeTestServices: true })("consumers wake through LISTEN/NOTIFY", (it) => {
  it.scoped("a relay in one process publishes what another process commits, with no poll in between", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const db = yield* freshDatabase("notify_wakeup")
      const bus = new MemoryEventBus()
      // The backstop poll is ten minutes: only a notification can wake this relay within the test.
      const env = { DATABASE_URL: db.url, EVENT_LOG_POLL: "600" }
      const context = yield* Layer.build(
        Relay.Default.pipe(
          Layer.provide(EventBus.Test(bus)),
          Layer.provideMerge(EventLog.Live),
          Layer.provide(Vault.Live),
          Layer.provideMerge(DatabaseLive),
          Layer.provide(configLayer(env))
        )
      )
      yield* Effect.forkScoped(Context.get(context, Relay).run)
      // Let the relay drain the empty log and settle on its wait.
      yield* Effect.sleep("1500 millis")
      expect(yield* Ref.get(bus.published)).toHaveLength(0)

      yield* Effect.promise(() => dovecot.append([mail({ subject: "Wake the other process" })]))
      const started = Date.now()
      const other = yield* Effect.promise(() =>
        runCli(["--once"], {
          ...env,
          GMAIL_SENDER_EMAIL: dovecot.user,
          GMAIL_SENDER_PASSWORD: dovecot.password,
          IMAP_HOST: dovecot.host,
          IMAP_PORT: String(dovecot.port),
          IMAP_TLS: "false",
          IMAP_BACKFILL: "all",
          AGENT: "off"
        })
      )
      expect(other.code, other.stderr).toBe(0)
      expect(other.stdout).toContain("Summary: 1 received")
      let published = yield* Ref.get(bus.published)
      while (published.length === 0 && Date.now() - started < 30_000) {
        yield* Effect.sleep("50 millis")
        published = yield* Ref.get(bus.published)
      }
      expect(published.map((e) => e.type)).toEqual(["EmailReceived"])
      // Well under the ten-minute backstop: the other process's commit announced itself.
      expect(Date.now() - started).toBeLessThan(30_000)
    }))
})

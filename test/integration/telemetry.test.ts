import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer, ManagedRuntime, Option } from "effect"
import { ImapLive } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { Responder } from "../../src/replies/Responder.js"
import { TracingLive } from "../../src/telemetry/Tracing.js"
import { configLayer } from "../unit/layers.js"
import { runCli } from "../support/cli.js"
import type { Dovecot } from "../support/dovecot.js"
import { DovecotServer } from "../support/dovecot.js"
import { mail } from "../support/mails.js"
import type { OtlpReceiver } from "../support/otlpReceiver.js"
import { OtlpReceiverServer } from "../support/otlpReceiver.js"
import { PostgresServer } from "../support/postgres.js"
import type { SmtpSink } from "../support/smtpSink.js"
import { SmtpSinkResource } from "../support/smtpSink.js"
import { sqlPipeline } from "../support/stack.js"

const makeOtel = (dovecot: Dovecot, receiver: OtlpReceiver, db: { readonly url: string }, sink: SmtpSink) => {
  const env = (extra: Record<string, string>) => ({
    GMAIL_SENDER_EMAIL: dovecot.user,
    GMAIL_SENDER_PASSWORD: dovecot.password,
    IMAP_HOST: dovecot.host,
    IMAP_PORT: String(dovecot.port),
    IMAP_TLS: "false",
    DATABASE_URL: db.url,
    AGENT: "off",
    ...extra
  })

  /**
   * Ingests one mail from `customer` and has the SMTP sink refuse its reply: the refusal names the
   * recipient, and Effect records it as the Mailer.send span's status and "exception" event. No
   * LoggingLive here, so the "Reply to … failed" log line becomes a span event in both modes too.
   */
  const refusedReply = async (label: string, customer: string, extra: Record<string, string>) => {
    receiver.reset()
    const settings = {
      ...env({ AGENT: "knowledge", IMAP_BACKFILL: "none", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, ...extra }),
      SMTP_HOST: sink.host,
      SMTP_PORT: String(sink.port),
      SMTP_TLS: "false",
      SMTP_TIMEOUT: "5",
      // The test mail carries no Authentication-Results: answer it anyway.
      REPLY_REQUIRE_AUTH: "false"
    }
    const layer = sqlPipeline("postgres", label, ImapLive, settings).pipe(
      Layer.provide(TracingLive),
      Layer.provide(configLayer(settings))
    )
    const runtime = ManagedRuntime.make(layer)
    try {
      const ingest = () => runtime.runPromise(Effect.flatMap(Poller, (p) => p.once).pipe(Effect.map(Option.getOrThrow)))
      await ingest()
      await dovecot.append([mail({ from: `Ada Lovelace <${customer}>`, subject: "Cannot log in", text: `Write to me at ${customer}` })])
      expect(await ingest()).toMatchObject({ received: 1 })
      sink.failNext(1, 550)
      expect(await runtime.runPromise(Effect.flatMap(Responder, (r) => r.drain).pipe(Effect.map(Option.getOrThrow))))
        .toMatchObject({ sent: 0, failed: 1 })
    } finally {
      sink.failNext(0)
      // Shuts the SDK down, which flushes the batch of spans to the receiver.
      await runtime.dispose()
    }
    await receiver.waitForSpans((spans) => spans.some((s) => s.name === "Mailer.send"))
    return receiver.spans
  }

  return { dovecot, receiver, db, sink, env, refusedReply }
}

/** Dovecot, the OTLP receiver, a database and an SMTP sink that takes Dovecot's login, for the suite. */
class Otel extends Context.Tag("telemetry.test/Otel")<Otel, ReturnType<typeof makeOtel>>() {
  static readonly layer = Layer.scoped(
    Otel,
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const receiver = yield* OtlpReceiverServer
      const db = yield* Effect.flatMap(PostgresServer, (postgres) => postgres.freshDatabase("otel"))
      const sink = yield* SmtpSinkResource({ user: dovecot.user, password: dovecot.password })
      return makeOtel(dovecot, receiver, db, sink)
    })
  ).pipe(Layer.provide(Layer.mergeAll(DovecotServer.layer(), OtlpReceiverServer.layer, PostgresServer.layer)))
}

/** A Promise-style test body over the suite's servers. */
const withOtel = (body: (otel: Otel["Type"]) => Promise<void>) =>
  Effect.flatMap(Otel, (otel) => Effect.promise(() => body(otel)))

layer(Otel.layer, { excludeTestServices: true })("OpenTelemetry export", (it) => {
  it.effect("a --once pass exports one trace per email, linked to its pass, with no body text or address", () =>
    withOtel(async ({ dovecot, receiver, env }) => {
      const uids = await dovecot.append([
        mail({ from: "Secret Person <secret.person@customer.test>", subject: "Secret subject line", text: "confidential body text" }),
        mail({ from: "other@customer.test", subject: "Another secret subject" }),
        mail({ from: null })
      ])
      const run = await runCli(["--once"], env({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: "mailroom-test" }))
      expect(run.code, run.stderr).toBe(0)
      await receiver.waitForSpans((spans) => spans.some((s) => s.name === "Intake.pass"))
      const spans = receiver.spans
      const pass = spans.find((s) => s.name === "Intake.pass")!
      expect(pass.resource["service.name"]).toBe("mailroom-test")
      expect(pass.attributes["messaging.batch.message_count"]).toBe(uids.length)
      const childrenOf = (id: string) => spans.filter((s) => s.parentSpanId === id).map((s) => s.name)
      expect(childrenOf(pass.spanId)).toEqual(expect.arrayContaining(["Imap.fetch", "TicketRepo.commit", "Imap.markSeen"]))

      const emails = spans.filter((s) => s.name === "mailroom.email")
      expect(emails.map((s) => s.attributes["mailroom.uid"]).sort()).toEqual(uids)
      expect(new Set(emails.map((s) => s.traceId)).size).toBe(uids.length)
      for (const email of emails) {
        expect(email.parentSpanId).toBeUndefined()
        expect(email.traceId).not.toBe(pass.traceId)
        expect(email.links).toEqual([{ traceId: pass.traceId, spanId: pass.spanId }])
        expect(childrenOf(email.spanId)).toEqual(expect.arrayContaining(["Parser.parse", "mailroom.email.recorded"]))
      }
      // The sender check of each accepted mail: its span and attributes exist only while tracing.
      const checks = spans.filter((s) => s.name === "SenderAuthenticator.check")
      expect(checks).toHaveLength(2)
      for (const check of checks) {
        expect(emails.map((s) => s.spanId)).toContain(check.parentSpanId)
        expect(check.attributes["mailroom.sender.auth_source"]).toBe("none")
      }
      const outcomes = spans.filter((s) => s.name === "mailroom.email.recorded").map((s) => s.attributes["mailroom.event.type"])
      expect(outcomes.sort()).toEqual(["EmailQuarantined", "EmailReceived", "EmailReceived"])
      const commit = spans.find((s) => s.name === "TicketRepo.commit")!
      expect(commit.attributes["db.system.name"]).toBe("postgresql")

      const everything = JSON.stringify(spans)
      for (const secret of ["confidential body text", "Secret subject line", "secret.person@customer.test", dovecot.password]) {
        expect(everything).not.toContain(secret)
      }
      expect(receiver.metrics.map((m) => m.name)).toEqual(expect.arrayContaining(["imap_poll_count", "mailroom_emails", "mailroom_imap_logins"]))
      const polls = receiver.metrics.find((m) => m.name === "imap_poll_count")!
      expect(polls.points[0]!.value).toBe(1)
      const byOutcome = Object.fromEntries(
        receiver.metrics.findLast((m) => m.name === "mailroom_emails")!.points.map((p) => [p.attributes["outcome"], p.value])
      )
      expect(byOutcome).toEqual({ EmailReceived: 2, EmailQuarantined: 1 })
      expect(receiver.unsupported).toBe(0)
    }))

  it.effect("with no endpoint nothing is exported", () =>
    withOtel(async ({ dovecot, receiver, env }) => {
      receiver.reset()
      const before = receiver.rawBodies
      await dovecot.append([mail()])
      const run = await runCli(["--once"], env({ OTEL_SERVICE_NAME: "mailroom-test" }))
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout).toContain("Summary: 1 received")
      expect(receiver.rawBodies).toBe(before)
      expect(receiver.spans).toHaveLength(0)
    }))

  it.effect("with OTEL_INCLUDE_PII unset, no exported span carries the customer's address, not even a failure naming it", () =>
    withOtel(async ({ sink, refusedReply }) => {
      const customer = "ada.lovelace+pii@customer.test"
      const spans = await refusedReply("otel_redacted", customer, {})
      const send = spans.find((s) => s.name === "Mailer.send")!
      expect(send.status?.code).toBe(2)
      expect(send.status?.message).toContain("the SMTP server refused the reply to [redacted]")
      const exception = send.events.find((e) => e.name === "exception")
      expect(exception?.attributes["exception.message"]).toContain("[redacted]")
      for (const span of spans) {
        const exported = JSON.stringify([span.name, span.attributes, span.status, span.events, span.links])
        expect(exported, span.name).not.toContain(customer)
        expect(exported, span.name).not.toContain("@customer.test")
      }
      // Only addresses go: the rest of a span stays as recorded.
      expect(send.attributes["server.address"]).toBe(sink.host)
      expect(send.attributes["network.protocol.name"]).toBe("smtp")
    }))

  it.effect("with OTEL_INCLUDE_PII=true the same run exports the address, so it is the redaction that removed it", () =>
    withOtel(async ({ refusedReply }) => {
      const customer = "ada.lovelace+pii@customer.test"
      const spans = await refusedReply("otel_pii", customer, { OTEL_INCLUDE_PII: "true" })
      const send = spans.find((s) => s.name === "Mailer.send")!
      expect(send.status?.message).toContain(`the SMTP server refused the reply to ${customer}`)
      expect(JSON.stringify(send.events)).toContain(customer)
    }))
})

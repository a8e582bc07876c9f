import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runCli } from "../support/cli.js"
import type { Dovecot } from "../support/dovecot.js"
import { startDovecot } from "../support/dovecot.js"
import { mail } from "../support/mails.js"
import type { OtlpReceiver } from "../support/otlpReceiver.js"
import { startOtlpReceiver } from "../support/otlpReceiver.js"
import { createDatabase } from "../support/postgres.js"

describe("OpenTelemetry export", () => {
  let dovecot: Dovecot
  let receiver: OtlpReceiver
  let db: Awaited<ReturnType<typeof createDatabase>>

  beforeAll(async () => {
    dovecot = await startDovecot()
    receiver = await startOtlpReceiver()
    db = await createDatabase("otel")
  })

  afterAll(async () => {
    await dovecot?.stop()
    await receiver?.close()
    await db?.drop()
  })

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

  it("a --once pass exports one trace per email, linked to its pass, with no body text or address", async () => {
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
  })

  it("with no endpoint nothing is exported", async () => {
    receiver.reset()
    const before = receiver.rawBodies
    await dovecot.append([mail()])
    const run = await runCli(["--once"], env({ OTEL_SERVICE_NAME: "mailroom-test" }))
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain("Summary: 1 received")
    expect(receiver.rawBodies).toBe(before)
    expect(receiver.spans).toHaveLength(0)
  })
})

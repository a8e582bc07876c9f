import { Effect, Layer } from "effect"
import type { AddressObject } from "mailparser"
import { simpleParser } from "mailparser"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ImapSession } from "../../src/mailbox/Imap.js"
import { Imap, ImapLive, MemoryMailbox } from "../../src/mailbox/Imap.js"
import type { DraftsShape } from "../../src/replies/Drafts.js"
import { Drafts } from "../../src/replies/Drafts.js"
import type { OutboundMail } from "../../src/replies/Mailer.js"
import type { Dovecot } from "../support/dovecot.js"
import { startDovecot } from "../support/dovecot.js"
import { configLayer } from "../unit/layers.js"

const DRAFTS = "Drafts"

let dovecot: Dovecot

beforeAll(async () => {
  dovecot = await startDovecot()
  await dovecot.createMailbox(DRAFTS)
})

afterAll(async () => {
  await dovecot?.stop()
})

const env = (extra: Record<string, string> = {}): Record<string, string> => ({
  GMAIL_SENDER_EMAIL: dovecot.user,
  GMAIL_SENDER_PASSWORD: dovecot.password,
  IMAP_HOST: dovecot.host,
  IMAP_PORT: String(dovecot.port),
  IMAP_TLS: "false",
  IMAP_COMMAND_TIMEOUT: "10",
  DRAFTS_MAILBOX: DRAFTS,
  ...extra
})

/** A live IMAP session and Drafts.Live, both read from these settings. */
const withDrafts = <A, E>(
  extra: Record<string, string>,
  use: (session: ImapSession, drafts: DraftsShape) => Effect.Effect<A, E>
) =>
  Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const session = yield* Effect.flatMap(Imap, (imap) => imap.connect)
      return yield* use(session, yield* Drafts)
    })).pipe(Effect.provide(Layer.mergeAll(ImapLive, Drafts.Live).pipe(Layer.provide(configLayer(env(extra))))))
  )

let counter = 0

const answer = (): OutboundMail => {
  counter += 1
  return {
    messageId: `<draft-${counter}.${Date.now()}.mailroom@example.com>`,
    from: dovecot.user,
    to: { address: "ada@customer.test", name: "Ada Müller" },
    subject: "Re: Kann mich nicht anmelden – Passwort [#0b6f3a2c5d1e]",
    text: "Hello Ada,\n\nuse Forgot password on the sign-in page.\n",
    inReplyTo: "<c1@customer.test>",
    references: ["<c0@customer.test>", "<c1@customer.test>"]
  }
}

const firstAddress = (value: AddressObject | Array<AddressObject> | undefined) =>
  (Array.isArray(value) ? value[0] : value)?.value[0]

describe("Drafts against a real Dovecot", () => {
  it("leaves one threaded \\Draft without Auto-Submitted, and a second save finds it instead of appending again", async () => {
    const mail = answer()
    const first = await withDrafts({}, (session, drafts) => drafts.save(session, mail))
    expect(first.foundExisting).toBe(false)
    expect(first.mailbox).toBe(DRAFTS)

    const stored = await dovecot.messages({ mailbox: DRAFTS })
    expect(stored.length).toBe(1)
    expect(first.uid).toBe(stored[0]!.uid)
    expect(stored[0]!.flags.has("\\Draft")).toBe(true)
    expect(stored[0]!.flags.has("\\Seen")).toBe(true)

    const parsed = await simpleParser(stored[0]!.source)
    expect(parsed.messageId).toBe(mail.messageId)
    expect(parsed.inReplyTo).toBe("<c1@customer.test>")
    expect(parsed.references).toEqual(["<c0@customer.test>", "<c1@customer.test>"])
    expect(parsed.subject).toBe(mail.subject)
    expect(firstAddress(parsed.from)?.address).toBe(dovecot.user)
    expect(firstAddress(parsed.to)).toMatchObject({ address: "ada@customer.test", name: "Ada Müller" })
    expect(parsed.headers.get("x-loop")).toBe(dovecot.user)
    expect(parsed.headers.get("auto-submitted")).toBeUndefined()
    expect(parsed.headers.get("x-auto-response-suppress")).toBeUndefined()
    expect(parsed.date).toBeInstanceOf(Date)
    expect(parsed.text).toContain("use Forgot password")

    const second = await withDrafts({}, (session, drafts) => drafts.save(session, mail))
    expect(second).toEqual({ uid: first.uid, foundExisting: true, mailbox: DRAFTS })
    expect((await dovecot.messages({ mailbox: DRAFTS })).length).toBe(1)
  })

  it("a drafts folder that does not exist fails with DraftsMailboxMissing, naming the setting", async () => {
    const error = await withDrafts({ DRAFTS_MAILBOX: "No Such Drafts" }, (session, drafts) => Effect.flip(drafts.save(session, answer())))
    expect(error._tag).toBe("DraftsMailboxMissing")
    expect(error.message).toContain(`"No Such Drafts"`)
    expect(error.message).toContain("DRAFTS_MAILBOX")
  })

  it("APPEND to a folder that does not exist is MailboxNotFound; to one that does, it answers the UID", async () => {
    const raw = Buffer.from("From: a@example.com\r\nSubject: x\r\nMessage-ID: <append-1@example.com>\r\n\r\nbody\r\n")
    const missing = await withDrafts({}, (session) => Effect.flip(session.append("Nowhere", raw, [])))
    expect(missing).toMatchObject({ _tag: "MailboxNotFound", mailbox: "Nowhere" })

    await dovecot.createMailbox("Appended")
    const appended = await withDrafts({}, (session) => session.append("Appended", raw, ["\\Flagged"]))
    const stored = await dovecot.messages({ mailbox: "Appended" })
    expect(stored.map((m) => m.uid)).toEqual([appended.uid])
    expect(stored[0]!.flags.has("\\Flagged")).toBe(true)
    expect(stored[0]!.source.equals(raw)).toBe(true)
  })
})

describe("Drafts.Test over a MemoryMailbox", () => {
  const run = <A, E>(mailbox: MemoryMailbox, use: (session: ImapSession, drafts: DraftsShape) => Effect.Effect<A, E>) =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const session = yield* Effect.flatMap(Imap, (imap) => imap.connect)
        return yield* use(session, yield* Drafts)
      })).pipe(Effect.provide(Layer.mergeAll(mailbox.layer, Drafts.Test)))
    )

  it("keeps one draft per Message-ID in folders.get(\"Drafts\"), and fails without that folder", async () => {
    const mailbox = new MemoryMailbox()
    const missing = await run(mailbox, (session, drafts) => Effect.flip(drafts.save(session, answer())))
    expect(missing._tag).toBe("DraftsMailboxMissing")

    mailbox.folders.set(DRAFTS, [])
    const mail = answer()
    const first = await run(mailbox, (session, drafts) => drafts.save(session, mail))
    const second = await run(mailbox, (session, drafts) => drafts.save(session, mail))
    expect(first).toEqual({ uid: 1, foundExisting: false, mailbox: DRAFTS })
    expect(second).toEqual({ uid: 1, foundExisting: true, mailbox: DRAFTS })
    expect(mailbox.folders.get(DRAFTS)!.length).toBe(1)
  })
})

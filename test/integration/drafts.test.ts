import { describe, expect, it, layer } from "@effect/vitest"
import { Cause, Context, Effect, Layer } from "effect"
import type { AddressObject } from "mailparser"
import { simpleParser } from "mailparser"
import { describeFailure } from "../../src/cli/Fatal.js"
import type { ImapSession } from "../../src/mailbox/Imap.js"
import { Imap, ImapLive, MemoryMailbox } from "../../src/mailbox/Imap.js"
import type { DraftsShape } from "../../src/replies/Drafts.js"
import { Drafts } from "../../src/replies/Drafts.js"
import type { OutboundMail } from "../../src/replies/Mailer.js"
import type { Dovecot } from "../support/dovecot.js"
import { DovecotServer } from "../support/dovecot.js"
import { configLayer } from "../unit/layers.js"

const DRAFTS = "Drafts"

/** A private Dovecot with a drafts folder, for the whole file. */
const DovecotWithDrafts = DovecotServer.layer().pipe(
  Layer.tap((context) => Effect.promise(() => Context.get(context, DovecotServer).createMailbox(DRAFTS)))
)

const env = (dovecot: Dovecot, extra: Record<string, string> = {}): Record<string, string> => ({
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
  Effect.flatMap(DovecotServer, (dovecot) =>
    Effect.scoped(Effect.gen(function*() {
      const session = yield* Effect.flatMap(Imap, (imap) => imap.connect)
      return yield* use(session, yield* Drafts)
    })).pipe(Effect.provide(Layer.mergeAll(ImapLive, Drafts.Live).pipe(Layer.provide(configLayer(env(dovecot, extra)))))))

let counter = 0

const answer = (from: string): OutboundMail => {
  counter += 1
  return {
    messageId: `<draft-${counter}.${Date.now()}.mailroom@example.com>`,
    from,
    to: { address: "ada@customer.test", name: "Ada Müller" },
    subject: "Re: Kann mich nicht anmelden – Passwort [#0b6f3a2c5d1e]",
    text: "Hello Ada,\n\nuse Forgot password on the sign-in page.\n",
    inReplyTo: "<c1@customer.test>",
    references: ["<c0@customer.test>", "<c1@customer.test>"]
  }
}

const firstAddress = (value: AddressObject | Array<AddressObject> | undefined) =>
  (Array.isArray(value) ? value[0] : value)?.value[0]

layer(DovecotWithDrafts, { excludeTestServices: true })("Drafts against a real Dovecot", (it) => {
  it.effect("leaves one threaded \\Draft without Auto-Submitted, and a second save finds it instead of appending again", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const mail = answer(dovecot.user)
      const first = yield* withDrafts({}, (session, drafts) => drafts.save(session, mail))
      expect(first.foundExisting).toBe(false)
      expect(first.mailbox).toBe(DRAFTS)

      const stored = yield* Effect.promise(() => dovecot.messages({ mailbox: DRAFTS }))
      expect(stored.length).toBe(1)
      expect(first.uid).toBe(stored[0]!.uid)
      expect(stored[0]!.flags.has("\\Draft")).toBe(true)
      expect(stored[0]!.flags.has("\\Seen")).toBe(true)

      const parsed = yield* Effect.promise(() => simpleParser(stored[0]!.source))
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

      const second = yield* withDrafts({}, (session, drafts) => drafts.save(session, mail))
      expect(second).toEqual({ uid: first.uid, foundExisting: true, mailbox: DRAFTS })
      expect((yield* Effect.promise(() => dovecot.messages({ mailbox: DRAFTS }))).length).toBe(1)
    }))

  it.effect("a drafts folder that does not exist fails with DraftsMailboxMissing, naming the setting", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const error = yield* withDrafts(
        { DRAFTS_MAILBOX: "No Such Drafts" },
        (session, drafts) => Effect.flip(drafts.save(session, answer(dovecot.user)))
      )
      expect(error._tag).toBe("DraftsMailboxMissing")
      expect(error.message).toContain(`"No Such Drafts"`)
      expect(error.message).toContain("DRAFTS_MAILBOX")
      expect(describeFailure(Cause.fail(error))?.exitCode).toBe(2)
    }))

  it.effect("APPEND to a folder that does not exist is MailboxNotFound; to one that does, it answers the UID", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const raw = Buffer.from("From: a@example.com\r\nSubject: x\r\nMessage-ID: <append-1@example.com>\r\n\r\nbody\r\n")
      const missing = yield* withDrafts({}, (session) => Effect.flip(session.append("Nowhere", raw, [])))
      expect(missing).toMatchObject({ _tag: "MailboxNotFound", mailbox: "Nowhere" })

      yield* Effect.promise(() => dovecot.createMailbox("Appended"))
      const appended = yield* withDrafts({}, (session) => session.append("Appended", raw, ["\\Flagged"]))
      const stored = yield* Effect.promise(() => dovecot.messages({ mailbox: "Appended" }))
      expect(stored.map((m) => m.uid)).toEqual([appended.uid])
      expect(stored[0]!.flags.has("\\Flagged")).toBe(true)
      expect(stored[0]!.source.equals(raw)).toBe(true)
    }))
})

describe("Drafts.Test over a MemoryMailbox", () => {
  const run = <A, E>(mailbox: MemoryMailbox, use: (session: ImapSession, drafts: DraftsShape) => Effect.Effect<A, E>) =>
    Effect.scoped(Effect.gen(function*() {
      const session = yield* Effect.flatMap(Imap, (imap) => imap.connect)
      return yield* use(session, yield* Drafts)
    })).pipe(Effect.provide(Layer.mergeAll(Imap.Test(mailbox), Drafts.Test)))

  it.effect("keeps one draft per Message-ID in folders.get(\"Drafts\"), and fails without that folder", () =>
    Effect.gen(function*() {
      const mailbox = new MemoryMailbox()
      const missing = yield* run(mailbox, (session, drafts) => Effect.flip(drafts.save(session, answer("support@example.com"))))
      expect(missing._tag).toBe("DraftsMailboxMissing")

      mailbox.folders.set(DRAFTS, [])
      const mail = answer("support@example.com")
      const first = yield* run(mailbox, (session, drafts) => drafts.save(session, mail))
      const second = yield* run(mailbox, (session, drafts) => drafts.save(session, mail))
      expect(first).toEqual({ uid: 1, foundExisting: false, mailbox: DRAFTS })
      expect(second).toEqual({ uid: 1, foundExisting: true, mailbox: DRAFTS })
      expect(mailbox.folders.get(DRAFTS)!.length).toBe(1)
    }))
})

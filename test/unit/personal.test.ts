import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Schema } from "effect"
import {
  CustomerErased,
  EmailDuplicate,
  EmailQuarantined,
  EmailReprocessed,
  EmailReceived,
  encodeEventData,
  EventData,
  MailboxReset,
  ReplyDrafted,
  ReplyFailed,
  ReplyIntended,
  ReplyRetried,
  ReplySent,
  ReplySkipped,
  unknownSender
} from "../../src/log/Event.js"
import type { EventType } from "../../src/log/Event.js"
import { fromHeaderAddress, personalFields } from "../../src/log/Personal.js"
import { open, seal } from "../../src/log/Sealing.js"
import type { DataKey, VaultShape } from "../../src/log/Vault.js"
import { decrypt, encrypt, keyedCustomerId, keysFrom } from "../../src/log/Vault.js"

/** The vault's contract over a Map: keys made on demand, destroyed by customer. */
const memoryVault = () => {
  const { idKey } = keysFrom(Buffer.from("personal test root"))
  const byCustomer = new Map<string, DataKey>()
  const byId = new Map<string, Buffer>()
  const vault: VaultShape = {
    customerId: (address) => keyedCustomerId(idKey, address),
    keysFor: (ids) =>
      Effect.sync(() => {
        for (const id of ids) {
          if (byCustomer.has(id)) continue
          const key = { id: crypto.randomUUID(), key: Buffer.from(crypto.getRandomValues(new Uint8Array(32))) }
          byCustomer.set(id, key)
          byId.set(key.id, key.key)
        }
        return { keys: new Map(ids.map((id) => [id, byCustomer.get(id)!])), insert: undefined }
      }),
    keysById: (ids) => Effect.sync(() => new Map(ids.flatMap((id) => byId.has(id) ? [[id, byId.get(id)!] as const] : []))),
    destroy: (customerId) =>
      Effect.sync(() => {
        const key = byCustomer.get(customerId)
        if (key === undefined) return 0
        byCustomer.delete(customerId)
        byId.delete(key.id)
        return 1
      })
  }
  return vault
}

const ids = { emailEventId: "e1", ticketId: "t1", customerId: "c1" }
const received = new EmailReceived({
  messageId: "<m1@customer.test>",
  from: { address: "ada@customer.test", name: "Ada Lovelace" },
  to: [{ address: "support@example.com", name: "" }],
  cc: [],
  replyTo: [],
  subject: "My card ending 4242 was charged twice",
  date: "Tue, 01 Dec 2026 10:00:00 +0000",
  inReplyTo: null,
  references: [],
  text: "Please refund. My phone is +44 20 7946 0000.",
  html: "<p>Please refund.</p>",
  attachments: [{ filename: "statement.pdf", contentType: "application/pdf", size: 10, sha256: "ab" }],
  headers: { "x-mailer": "Ada's phone" },
  contentType: "multipart/alternative",
  authResults: ["mx.google.com; dmarc=pass header.from=customer.test"],
  truncated: [],
  rawSha256: "f00",
  size: 1234,
  ticketId: "t1",
  customerId: "c1",
  newTicket: true,
  senderAuth: unknownSender,
  linkedTicketId: null
})

const samples: Record<string, EventData> = {
  EmailReceived: received,
  EmailQuarantined: new EmailQuarantined({
    reason: "too_large",
    detail: "40 MB over the 25 MB limit",
    size: 40_000_000,
    rawSha256: "bad",
    headersOnly: true,
    headers: { messageId: "<q@customer.test>", from: "Ada Lovelace <Ada@Customer.test>", subject: "Scans of my passport", date: null }
  }),
  ReplyIntended: new ReplyIntended({
    ...ids,
    messageId: "<r1@example.com>",
    from: "support@example.com",
    to: { address: "ada@customer.test", name: "Ada" },
    subject: "Re: My card",
    inReplyTo: "<m1@customer.test>",
    references: ["<m1@customer.test>"],
    text: "We refunded the charge, Ada.",
    agent: "knowledge",
    model: null,
    mode: "send",
    draftReason: null,
    recipientId: "r-id"
  }),
  ReplySent: new ReplySent({ ...ids, messageId: "<r1@example.com>", to: "ada@customer.test", response: "250 OK", attempts: 1, foundInSent: false }),
  ReplyDrafted: new ReplyDrafted({
    ...ids,
    messageId: "<r1@example.com>",
    mailbox: "Drafts",
    uid: 3,
    foundExisting: false,
    reason: "a link to ada.example"
  }),
  ReplySkipped: new ReplySkipped({ ...ids, reason: "invalid_recipient", detail: "ada@@customer.test" }),
  ReplyFailed: new ReplyFailed({ ...ids, stage: "smtp", reason: "550 ada@customer.test unknown", attempts: 3, messageId: null })
}

/** Holds nobody's personal data: never sealed. */
const erased = new CustomerErased({
  customerId: "c1",
  addressId: "a1",
  ticketIds: ["t1"],
  keysDestroyed: 1,
  rawMessagesDeleted: 1,
  messagesDeleted: 2,
  unsealedEvents: 0
})

const encode = Schema.encodeSync(EventData)

describe("personal fields", () => {
  it("name every field of every sealed event, either plain or with its erased value", () => {
    for (const [type, fields] of Object.entries(personalFields)) {
      const encoded = encode(samples[type]!) as Record<string, unknown>
      const named = new Set([...fields!.plain, ...Object.keys(fields!.erased), "_tag"])
      expect([...Object.keys(encoded)].filter((name) => !named.has(name)), type).toEqual([])
      expect([...named].filter((name) => !(name in encoded)), type).toEqual([])
    }
    expect(Object.keys(personalFields).sort()).toEqual(Object.keys(samples).sort())
  })

  it("stores every event type's fields as the schema encodes them, so that the log can skip the schema's walk", () => {
    const every: ReadonlyArray<EventData> = [
      ...Object.values(samples),
      new MailboxReset({ previousUidValidity: 1, uidValidity: 2 }),
      new EmailDuplicate({ messageId: "<m1@customer.test>", duplicateOf: "e0", ticketId: null, rawSha256: "f00", size: 12 }),
      new EmailReprocessed({
        quarantineEventId: "q1",
        reason: "unparseable",
        outcomeEventId: "e2",
        outcome: "EmailReceived",
        ticketId: "t1",
        rawSha256: "f00",
        bytesFrom: "stored"
      }),
      // Ids alone: a retry holds nobody's personal data.
      new ReplyRetried({ emailEventId: "e1", ticketId: "t1", customerId: "c1", retry: 1, failedEventId: "f1" }),
      erased
    ]
    expect(new Set(every.map((data) => data._tag))).toEqual(new Set(EventData.members.map((member) => member.identifier)))
    for (const data of every) {
      expect(encodeEventData(data), data._tag).toStrictEqual(encode(data))
      expect(JSON.stringify(encodeEventData(data)), data._tag).toBe(JSON.stringify(encode(data)))
    }
  })

  it("finds the address in a raw From header", () => {
    expect(fromHeaderAddress("Ada Lovelace <Ada@Customer.test>")).toBe("ada@customer.test")
    expect(fromHeaderAddress("ada@customer.test")).toBe("ada@customer.test")
    expect(fromHeaderAddress("\"Smith, Ada\" <ada@customer.test>, bob@x.test")).toBe("ada@customer.test")
    expect(fromHeaderAddress("undisclosed-recipients:;")).toBeNull()
    expect(fromHeaderAddress(null)).toBeNull()
  })
})

const asRows = (events: ReadonlyArray<{ id: string; data: EventData }>, sealed: ReadonlyArray<{ data: string; keyId: string | null; sealed: Buffer | null }>) =>
  sealed.map((s, i) => ({ id: events[i]!.id, data: JSON.parse(s.data), key_id: s.keyId, sealed: s.sealed }))

describe("sealing", () => {
  const events = [...Object.values(samples), erased].map((data, i) => ({ id: `00000000-0000-4000-8000-00000000000${i}`, data }))

  it.effect("keeps only plain fields readable in the row, and opens back to the same data", () =>
    Effect.gen(function*() {
      const vault = memoryVault()
      const sealed = (yield* seal(vault, events)).rows
      const stored = sealed.map((s) => s.data).join("\n")
      for (const secret of ["ada@customer.test", "Ada", "4242", "+44 20", "passport", "statement.pdf", "refunded", "ada.example"]) {
        expect(stored).not.toContain(secret)
      }
      expect(sealed.at(-1)!.keyId).toBeNull() // CustomerErased holds nobody's data
      const opened = yield* open(vault, asRows(events, sealed))
      expect(opened.map((o) => o.erased)).toEqual(events.map(() => false))
      expect(opened.map((o) => encode(o.data))).toEqual(events.map((e) => encode(e.data)))
    }))

  it.effect("seals quarantined mail under the key of its From address, and every other event under its customer's", () =>
    Effect.gen(function*() {
      const vault = memoryVault()
      const sealed = (yield* seal(vault, events)).rows
      const keyOf = (type: EventType) => sealed[events.findIndex((e) => e.data._tag === type)]!.keyId
      expect(keyOf("ReplySent")).toBe(keyOf("EmailReceived"))
      expect(keyOf("EmailQuarantined")).not.toBe(keyOf("EmailReceived"))
      const { keys } = yield* vault.keysFor([vault.customerId("ada@customer.test")])
      expect(keys.get(vault.customerId("ada@customer.test"))!.id).toBe(keyOf("EmailQuarantined"))
    }))

  it.effect("reads what a destroyed key sealed as erased: plain fields kept, personal ones empty", () =>
    Effect.gen(function*() {
      const vault = memoryVault()
      const sealed = (yield* seal(vault, events)).rows
      expect(yield* vault.destroy("c1")).toBe(1)
      const opened = yield* open(vault, asRows(events, sealed))
      const email = opened[0]!
      expect(email.erased).toBe(true)
      expect(email.data).toMatchObject({ _tag: "EmailReceived", rawSha256: "f00", ticketId: "t1", size: 1234, subject: "", text: "", html: null })
      expect(email.data._tag === "EmailReceived" && email.data.from.address).toBe("")
      // Quarantined mail had its own key (its From address's), still there.
      expect(opened[1]!.erased).toBe(false)
      expect(opened.slice(2, 7).every((o) => o.erased)).toBe(true)
      expect(JSON.stringify(opened.slice(2, 7).map((o) => o.data))).not.toMatch(/ada|refund|550/i)
    }))

  it.effect("refuses a sealed box moved to another event", () =>
    Effect.gen(function*() {
      const vault = memoryVault()
      const sealed = (yield* seal(vault, events.slice(0, 1))).rows
      const moved = [{ id: "00000000-0000-4000-8000-0000000000ff", data: JSON.parse(sealed[0]!.data), key_id: sealed[0]!.keyId, sealed: sealed[0]!.sealed }]
      const exit = yield* Effect.exit(open(vault, moved))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(String(Cause.squash((exit as Exit.Failure<unknown, unknown>).cause))).toContain("does not decrypt")
    }))
})

describe("encrypt", () => {
  it("gives every box an IV of its own, across the refills of its IV pool, and each box opens", () => {
    const key = Buffer.alloc(32, 7)
    const plain = Buffer.from("the same personal fields")
    const boxes = Array.from({ length: 1000 }, (_, i) => encrypt(key, plain, `event-${i}`))
    expect(new Set(boxes.map((box) => box.subarray(0, 12).toString("hex"))).size).toBe(1000)
    boxes.forEach((box, i) => expect(decrypt(key, box, `event-${i}`)).toEqual(plain))
    expect(decrypt(key, boxes[0]!, "event-1")).toBeUndefined()
  })
})

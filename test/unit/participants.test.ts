import { describe, expect, it } from "vitest"
import type { Address, ParsedEmail } from "../../src/mail/Email.js"
import type { EmailReceived } from "../../src/log/Event.js"
import { ticketToken } from "../../src/replies/Reply.js"
import type { Incoming, Known } from "../../src/tickets/Decide.js"
import { decide } from "../../src/tickets/Decide.js"
import { keyedCustomerId } from "../../src/log/Vault.js"

const address = (value: string): Address => ({ address: value, name: "" })

let uid = 0
const incoming = (email: Partial<ParsedEmail> & { readonly from: Address }): Incoming => {
  uid += 1
  return {
    uid,
    size: 100,
    rawSha256: `hash${uid}`,
    headersOnly: false,
    parsed: {
      _tag: "Accepted",
      email: {
        messageId: `<m${uid}@x.test>`,
        to: [address("support@example.com")],
        cc: [],
        replyTo: [],
        subject: `Subject ${uid}`,
        date: null,
        inReplyTo: null,
        references: [],
        text: "hello",
        html: null,
        attachments: [],
        headers: {},
        contentType: "text/plain",
        authResults: [],
        truncated: [],
        ...email
      }
    }
  }
}

const nothingKnown: Known = { byMessageId: new Map(), byRawSha256: new Map(), byTicketToken: new Map(), parties: new Map(), customers: new Map() }
const customerId = (address: string) => keyedCustomerId(Buffer.from("participants test"), address)

const received = (items: ReadonlyArray<Incoming>, known: Known = nothingKnown) =>
  decide(items, known, { customerId }).map((d) => d.data as EmailReceived)

describe("joining a ticket", () => {
  it("the customer, and whom the customer's own mail put in To/Cc, join by headers or token; a stranger opens a linked ticket", () => {
    const [first, ...rest] = received([
      incoming({ from: address("ada@customer.test"), messageId: "<a1@customer.test>", cc: [address("bob@customer.test")] }),
      incoming({ from: address("ada@customer.test"), inReplyTo: "<a1@customer.test>" }),
      incoming({ from: address("bob@customer.test"), references: ["<a1@customer.test>"] }),
      incoming({ from: address("mallory@intruder.test"), inReplyTo: "<a1@customer.test>" })
    ])
    const ticket = first!.ticketId
    expect(rest.map((e) => [e.ticketId === ticket, e.newTicket, e.linkedTicketId])).toEqual([
      [true, false, null],
      [true, false, null],
      [false, true, ticket]
    ])
    const [byToken] = received([incoming({ from: address("trudy@intruder.test"), subject: `Re: [#${ticketToken(ticket)}]` })], {
      ...nothingKnown,
      byTicketToken: new Map([[ticketToken(ticket), ticket]]),
      parties: new Map([[ticket, { customerId: customerId("ada@customer.test"), participants: new Set(["ada@customer.test"]) }]])
    })
    expect([byToken!.ticketId === ticket, byToken!.linkedTicketId]).toEqual([false, ticket])
  })

  it("only the customer's own mail adds participants: a Cc'd colleague cannot bring in a stranger", () => {
    const decisions = decide([
      incoming({ from: address("ada@customer.test"), messageId: "<a1@customer.test>", cc: [address("bob@customer.test")] }),
      incoming({ from: address("bob@customer.test"), messageId: "<b1@customer.test>", inReplyTo: "<a1@customer.test>", cc: [address("eve@intruder.test")] }),
      incoming({ from: address("eve@intruder.test"), inReplyTo: "<b1@customer.test>" })
    ], nothingKnown, { customerId })
    expect(decisions.map((d) => d.participants)).toEqual([
      ["ada@customer.test", "support@example.com", "bob@customer.test"],
      [],
      ["eve@intruder.test", "support@example.com"]
    ])
    const eve = decisions[2]!.data as EmailReceived
    expect([eve.newTicket, eve.linkedTicketId]).toEqual([true, decisions[0]!.ticketId])
  })

  it("a ticket whose parties are unknown is joined by nobody", () => {
    const [mail] = received([incoming({ from: address("ada@customer.test"), inReplyTo: "<old@customer.test>" })], {
      ...nothingKnown,
      byMessageId: new Map([["<old@customer.test>", { eventId: "e1", ticketId: "t1" }]])
    })
    expect([mail!.newTicket, mail!.linkedTicketId]).toEqual([true, "t1"])
  })
})

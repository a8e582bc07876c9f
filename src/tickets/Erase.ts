import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { CustomerErased } from "../log/Event.js"
import { EventLog } from "../log/EventLog.js"
import { Vault } from "../log/Vault.js"

/**
 * `mailroom erase --customer ADDRESS`, the right to erasure over an append-only log. In one
 * transaction under the log's append lock: the customer's projection rows (customers, their tickets
 * with every message in them, their mail and the answers to them elsewhere, their participation in
 * other tickets) and raw mail are deleted, every key their personal data was sealed under is
 * destroyed, and a CustomerErased is appended. The relay turns it into Kafka tombstones.
 */
export const eraseCustomer = Effect.fn("Erase.customer")(function*(input: string) {
  const sql = yield* SqlClient.SqlClient
  const log = yield* EventLog
  const vault = yield* Vault
  const address = input.trim().toLowerCase()
  const addressId = vault.customerId(address)
  const erased = yield* log.transaction((append) =>
    Effect.gen(function*() {
      // The projection's id wins: customers recorded before keyed ids have a plain-hash one.
      const recorded = yield* sql<{ id: string }>`SELECT id FROM customers WHERE email = ${address}`
      const customerId = recorded[0]?.id ?? addressId
      const ids = [...new Set([customerId, addressId])]
      const tickets = (yield* sql<{ id: string }>`SELECT id FROM tickets WHERE customer_id = ANY(${ids}) ORDER BY created_at`).map((row) => row.id)
      const mine = sql`
        ticket_id = ANY(${tickets}) OR (direction = 'inbound' AND from_email = ${address}) OR (direction = 'outbound' AND to_email = ${address})
      `
      // Raw mail: of the messages going, and of quarantined mail sealed under the customer's keys.
      const raw = yield* sql<{ sha256: string }>`
        SELECT raw_sha256 AS sha256 FROM messages WHERE raw_sha256 IS NOT NULL AND (${mine})
        UNION
        SELECT e.data->>'rawSha256' FROM events e JOIN customer_keys k ON k.id = e.key_id
        WHERE k.customer_id = ANY(${ids}) AND e.data->>'rawSha256' IS NOT NULL
      `
      const quarantined = yield* sql<{ id: string }>`
        SELECT e.id FROM events e JOIN customer_keys k ON k.id = e.key_id
        WHERE e.type = 'EmailQuarantined' AND k.customer_id = ANY(${ids}) ORDER BY e.seq
      `
      const messages = yield* sql<{ id: string }>`DELETE FROM messages WHERE ${mine} RETURNING id`
      yield* sql`DELETE FROM ticket_participants WHERE ticket_id = ANY(${tickets}) OR address = ${address}`
      yield* sql`DELETE FROM tickets WHERE id = ANY(${tickets})`
      yield* sql`DELETE FROM customers WHERE id = ANY(${ids}) OR email = ${address}`
      const rawDeleted = raw.length === 0
        ? []
        : yield* sql<{ sha256: string }>`DELETE FROM raw_messages WHERE sha256 = ANY(${raw.map((row) => row.sha256)}) RETURNING sha256`
      const keys = yield* Effect.reduce(ids, 0, (sum, id) => Effect.map(vault.destroy(id), (n) => sum + n))
      // Recorded before 0010 sealed personal fields: their data stays as it was written (the log is never rewritten).
      const [unsealed] = yield* sql<{ n: string }>`
        SELECT count(*) AS n FROM events WHERE key_id IS NULL AND data->>'customerId' = ANY(${ids})
      `
      const data = new CustomerErased({
        customerId,
        addressId,
        ticketIds: tickets,
        quarantineEventIds: quarantined.map((row) => row.id),
        keysDestroyed: keys,
        rawMessagesDeleted: rawDeleted.length,
        messagesDeleted: messages.length,
        unsealedEvents: Number(unsealed?.n ?? 0)
      })
      yield* append([{
        id: crypto.randomUUID(),
        type: "CustomerErased",
        mailbox: "",
        uidvalidity: null,
        uid: null,
        ticketId: null,
        occurredAt: new Date(),
        data,
        trace: null
      }])
      return data
    })
  )
  // UPDATE leaves the old row versions, keys included, on disk until a vacuum reclaims them.
  yield* sql`VACUUM FULL customer_keys`.pipe(Effect.ignore)
  yield* Effect.annotateCurrentSpan({
    "mailroom.erase.tickets": erased.ticketIds.length,
    "mailroom.erase.keys_destroyed": erased.keysDestroyed
  })
  return erased
})

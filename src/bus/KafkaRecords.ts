import { Effect, Schema } from "effect"
import type { Message } from "kafkajs"
import { EventData } from "../log/Event.js"
import type { StoredEvent } from "../log/Event.js"
import { PublishFailed } from "./EventBus.js"

/*
 * What an event becomes on Kafka, and how a page of them gets there: records, their size in a
 * produce request, sends under the broker's limit, and dead letters for what the broker refuses.
 * Plain code over a `send` function, so that it is tested without a broker.
 */

const encode = Schema.encodeSync(EventData)

/** The documented value of an `email_inbound` record. */
export const inboundPayload = (event: StoredEvent) => {
  if (event.data._tag !== "EmailReceived") return undefined
  const email = event.data
  return {
    eventId: event.id,
    mailbox: event.mailbox,
    ticketId: email.ticketId,
    newTicket: email.newTicket,
    customer: { email: email.from.address, name: email.from.name },
    subject: email.subject,
    text: email.text,
    html: email.html,
    messageId: email.messageId,
    inReplyTo: email.inReplyTo,
    references: email.references,
    receivedAt: event.occurredAt.toISOString(),
    attachments: email.attachments,
    truncated: email.truncated
  }
}

const truncatedFields = (event: StoredEvent): ReadonlyArray<string> =>
  event.data._tag === "EmailReceived" ? event.data.truncated : []

/** CloudEvents 1.0 binary mode: the envelope travels in ce_* headers, the data is the record value. */
export const cloudEventHeaders = (event: StoredEvent): Record<string, string> => ({
  ce_specversion: "1.0",
  ce_id: event.id,
  ce_type: `mailroom.${event.type}`,
  ce_source: `/mailroom/${encodeURIComponent(event.mailbox)}`,
  ce_time: event.occurredAt.toISOString(),
  ...(event.ticketId ? { ce_subject: event.ticketId } : {}),
  "content-type": "application/json",
  ...(event.trace ? { traceparent: event.trace } : {}),
  ...(truncatedFields(event).length > 0 ? { mailroom_truncated: truncatedFields(event).join(",") } : {})
})

export interface OutRecord {
  readonly topic: string
  readonly message: Message
}

/**
 * A record's key: the ticket, so that a ticket's records stay in order on one partition. Quarantined
 * mail has no ticket and is keyed by its own event id, so that an erasure can tombstone it alone;
 * CustomerErased by the customer; the rest (MailboxReset) by the mailbox.
 */
export const recordKey = (event: StoredEvent): string =>
  event.ticketId ?? (event.data._tag === "CustomerErased"
    ? event.data.customerId
    : event.data._tag === "EmailQuarantined"
    ? event.id
    : event.mailbox)

/** The records one event becomes: always one on the events topic; received mail also on the inbound topic. */
export const toRecords = (
  event: StoredEvent,
  topics: { readonly inbound: string; readonly events: string }
): Array<OutRecord> => {
  const headers = cloudEventHeaders(event)
  const key = recordKey(event)
  // An erased mail's fields are empty: nothing to tell email_inbound's readers.
  const inbound = event.erased ? undefined : inboundPayload(event)
  // Compacted topics drop every earlier record of a key once its tombstone is there, and sinks
  // (Kafka Connect, ksqlDB tables) delete the row: the erased customer's tickets are those keys.
  const tombstones = event.data._tag === "CustomerErased"
    ? [
      ...event.data.ticketIds.flatMap((ticketId) => [topics.inbound, topics.events].map((topic) => ({ topic, key: ticketId }))),
      ...event.data.quarantineEventIds.map((id) => ({ topic: topics.events, key: id }))
    ].map(({ key, topic }) => ({ topic, message: { key, value: null, headers: { mailroom_erased_by: event.id } } }))
    : []
  return [
    ...tombstones,
    ...(inbound ? [{ topic: topics.inbound, message: { key, value: JSON.stringify(inbound), headers } }] : []),
    {
      topic: topics.events,
      message: {
        key,
        value: JSON.stringify({ seq: event.seq.toString(), uid: event.uid, uidvalidity: event.uidvalidity, data: encode(event.data) }),
        headers
      }
    }
  ]
}

const bytesOf = (value: Buffer | string | null | undefined): number =>
  value === null || value === undefined ? 0 : typeof value === "string" ? Buffer.byteLength(value) : value.length

/** Record batch v2: the header each partition's batch carries once (offsets, lengths, CRC, producer id). */
const BATCH_HEADER_BYTES = 61

/** What a record adds to its partition's record batch, at most: every varint counted at its widest. */
export const recordBytes = (message: Message): number =>
  Object.entries(message.headers ?? {}).reduce(
    (sum, [key, value]) =>
      [value ?? []].flat().reduce((total: number, one) => total + 10 + Buffer.byteLength(key) + bytesOf(one), sum),
    36 + bytesOf(message.key) + bytesOf(message.value)
  )

/** One event on its way out: its records travel together, so that it is acknowledged or refused whole. */
export interface Outgoing {
  readonly event: StoredEvent
  readonly records: ReadonlyArray<OutRecord>
  readonly bytes: number
}

export const outgoing = (event: StoredEvent, topics: { readonly inbound: string; readonly events: string }): Outgoing => {
  const records = toRecords(event, topics)
  return { event, records, bytes: records.reduce((sum, record) => sum + recordBytes(record.message), 0) }
}

export interface SendLimits {
  readonly maxBytes: number
  readonly maxRecords: number
}

/** Small events pack densely: a count bound as well keeps one refused send's halving short. */
export const MAX_SEND_RECORDS = 500

/**
 * A page split, in order, into sends whose records together stay under `maxBytes` (so no partition's
 * batch can be over it) and `maxRecords`. An event over the limit on its own goes alone: the broker
 * may take more than the setting says, and if not, only that event is refused.
 */
export const planSends = (items: ReadonlyArray<Outgoing>, limits: SendLimits): Array<Array<Outgoing>> => {
  const budget = limits.maxBytes - BATCH_HEADER_BYTES
  const sends: Array<Array<Outgoing>> = []
  let current: Array<Outgoing> = []
  let bytes = 0
  let records = 0
  for (const item of items) {
    if (current.length > 0 && (bytes + item.bytes > budget || records + item.records.length > limits.maxRecords)) {
      sends.push(current)
      current = []
      bytes = 0
      records = 0
    }
    current.push(item)
    bytes += item.bytes
    records += item.records.length
  }
  if (current.length > 0) sends.push(current)
  return sends
}

/** The broker's verdicts on the records themselves: sending the same bytes again cannot help. */
const refusals = new Set(["MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_RECORD", "CORRUPT_MESSAGE"])

/**
 * The broker's refusal of the records, found anywhere in the chain kafkajs wraps its errors in
 * (CORRUPT_MESSAGE arrives after kafkajs's own retries); undefined when waiting could help.
 */
export const refusalOf = (error: unknown): string | undefined => {
  let current = error
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const { cause, message, type } = current as { readonly type?: unknown; readonly message?: unknown; readonly cause?: unknown }
    if (typeof type === "string" && refusals.has(type)) return `${type}: ${String(message)}`
    current = cause
  }
  return undefined
}

/** The value of a dead-letter record: enough to find the event in the log, which keeps it whole. */
export interface DeadLetter {
  readonly eventId: string
  readonly seq: string
  readonly type: string
  readonly mailbox: string
  readonly reason: string
  /** Bytes of the event's Kafka records. */
  readonly size: number
}

const describe = (cause: unknown) => String((cause as Error | undefined)?.message ?? cause)

export interface Delivery {
  /** Resolves once the broker acknowledged every record; fails with what the client threw. */
  readonly send: (records: ReadonlyArray<OutRecord>) => Effect.Effect<void, unknown>
  /** Sets a refused event aside, on the dead-letter topic and in dead_letters. */
  readonly deadLetter: (letter: DeadLetter) => Effect.Effect<void, unknown>
  readonly limits: SendLimits
}

/**
 * Sends a page in order, in sends under the limits. A send the broker refuses for its records is
 * halved until the refused event is alone; that event becomes a dead letter and the rest goes on.
 * Anything else fails, naming the last event delivered, so that the relay resumes after it.
 */
export const makeDeliver = ({ deadLetter, limits, send }: Delivery) => (items: ReadonlyArray<Outgoing>) =>
  Effect.suspend(() => {
    let delivered: bigint | undefined
    const failed = (cause: unknown) =>
      new PublishFailed({
        bus: "kafka",
        reason: describe(cause),
        cause,
        ...(delivered === undefined ? {} : { deliveredUpTo: delivered })
      })
    const done = (group: ReadonlyArray<Outgoing>) =>
      Effect.sync(() => {
        delivered = group.at(-1)!.event.seq
      })
    const attempt = (group: ReadonlyArray<Outgoing>): Effect.Effect<void, PublishFailed> =>
      send(group.flatMap((item) => item.records)).pipe(
        Effect.matchEffect({
          onSuccess: () => done(group),
          onFailure: (cause) => {
            const refusal = refusalOf(cause)
            if (refusal === undefined) return Effect.fail(failed(cause))
            if (group.length > 1) {
              // The broker does not say which record it refused: halves find it, in order. Partitions it
            // took from the refused send get those records again (at-least-once).
              const half = Math.ceil(group.length / 2)
              return Effect.zipRight(attempt(group.slice(0, half)), attempt(group.slice(half)))
            }
            const { bytes, event } = group[0]!
            return deadLetter({
              eventId: event.id,
              seq: event.seq.toString(),
              type: event.type,
              mailbox: event.mailbox,
              reason: refusal,
              size: bytes
            }).pipe(Effect.mapError(failed), Effect.zipRight(done(group)))
          }
        })
      )
    return Effect.forEach(planSends(items, limits), attempt, { discard: true })
  })

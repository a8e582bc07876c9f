import type { IncomingMail } from "./Incoming.js"
import { SqlClient } from "@effect/sql"
import { Effect, Option, Scope } from "effect"
import { IntakeConfig } from "../config/Config.js"
import type { QuarantineReason, RawMail } from "../mail/Email.js"
import { Parser } from "../mail/Parser.js"
import { SenderAuthenticator } from "../mail/SenderAuth.js"
import { readIncoming } from "./Incoming.js"
import { knownFromDatabase } from "./Known.js"
import { importPath, mailAt, openSource } from "../mail/Sources.js"
import { EmailReprocessed } from "../log/Event.js"
import type { EmailQuarantined } from "../log/Event.js"
import { EventLog } from "../log/EventLog.js"
import { Vault } from "../log/Vault.js"
import type { NewEvent } from "../log/EventLog.js"
import { Imap } from "../mailbox/Imap.js"
import type { ImapSession } from "../mailbox/Imap.js"
import type { MailboxRuntime } from "../mailbox/Fleet.js"
import { StatusFleet } from "../mailbox/Fleet.js"
import type { Incoming } from "./Decide.js"
import { decide } from "./Decide.js"
import { project, writeProjection } from "./Projection.js"

export interface ReprocessOptions {
  /** Only these quarantine reasons; all when empty. */
  readonly reasons: ReadonlyArray<QuarantineReason>
  /** Only these EmailQuarantined event ids; all when empty. */
  readonly ids: ReadonlyArray<string>
}

/** What became of one quarantined mail. */
export type ReprocessOutcome =
  | {
    readonly _tag: "Reprocessed"
    readonly quarantineEventId: string
    readonly reason: QuarantineReason
    readonly outcome: "EmailReceived" | "EmailDuplicate"
    readonly outcomeEventId: string
    readonly ticketId: string | null
    readonly newTicket: boolean
    readonly bytesFrom: EmailReprocessed["bytesFrom"]
  }
  | { readonly _tag: "QuarantinedAgain"; readonly quarantineEventId: string; readonly reason: QuarantineReason; readonly detail: string }
  | { readonly _tag: "Skipped"; readonly quarantineEventId: string; readonly reason: QuarantineReason; readonly why: string }

interface Quarantine {
  readonly id: string
  readonly mailbox: string
  readonly uidvalidity: number | null
  readonly uid: number | null
  readonly data: EmailQuarantined
}

type Bytes = { readonly raw: RawMail; readonly from: EmailReprocessed["bytesFrom"] } | { readonly skip: string }

/** A watched mailbox's connection, opened on first use, and the folder that holds its mail. */
interface Source {
  readonly session: Effect.Effect<ImapSession, unknown>
  readonly folder: string
}

/**
 * Where a quarantined mail can be fetched again: the watched mailbox its key names (each of
 * MAILBOXES_FILE, or the one of the settings). The one mailbox of the settings also serves a key
 * it no longer watches (IMAP_MAILBOX changed since): that folder, on the same account.
 */
const sourceFor = (fleet: ReadonlyArray<MailboxRuntime<Imap>>, key: string) => {
  const watched = fleet.find((runtime) => runtime.watched.key === key)
  if (watched !== undefined) return { runtime: watched, folder: watched.watched.folder }
  const single = fleet.length === 1 && fleet[0]!.watched.key === fleet[0]!.watched.folder ? fleet[0] : undefined
  return single === undefined ? undefined : { runtime: single, folder: key }
}

const describeCause = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * `mailroom reprocess`: quarantined mail parsed again under today's settings. A success is committed
 * as intake commits (raw bytes, events, projections, one transaction): an EmailReprocessed naming the
 * quarantine event and the EmailReceived or EmailDuplicate it became. The quarantine event stays.
 * The new intake event carries no UID: the quarantine event keeps that UID's one intake slot.
 */
export class Reprocessor extends Effect.Service<Reprocessor>()("mailroom/Reprocessor", {
  effect: Effect.gen(function*() {
    const config = yield* IntakeConfig
    const parser = yield* Parser
    const read = readIncoming(parser, yield* SenderAuthenticator)
    const log = yield* EventLog
    const sql = yield* SqlClient.SqlClient
    const vault = yield* Vault
    const fleet = yield* Effect.serviceOption(StatusFleet)

    const pending = (options: ReprocessOptions) =>
      log.readWhere(sql`
        type = 'EmailQuarantined'
          AND ${options.reasons.length === 0 ? sql`true` : sql`data->>'reason' = ANY(${options.reasons})`}
          AND ${options.ids.length === 0 ? sql`true` : sql`id::text = ANY(${options.ids})`}
          AND NOT EXISTS (
            SELECT 1 FROM events r WHERE r.type = 'EmailReprocessed' AND r.data->>'quarantineEventId' = events.id::text
          )
      `).pipe(Effect.map((events) =>
        // An erased sender's quarantined mail has nothing left to parse again.
        events.filter((event) => !event.erased).map((event): Quarantine => ({
          id: event.id,
          mailbox: event.mailbox,
          uidvalidity: event.uidvalidity,
          uid: event.uid,
          data: event.data as EmailQuarantined
        }))
      ))

    const stored = (sha: string) =>
      sql<{ bytes: Uint8Array; headers_only: boolean; size: string }>`
        SELECT bytes, headers_only, size FROM raw_messages WHERE sha256 = ${sha}
      `.pipe(Effect.map((rows) => rows[0]))

    /** The mailbox holds the whole mail still, under the same UIDVALIDITY: fetched again by its UID. */
    const fromImap = (q: Quarantine, source: Source, kept: string): Effect.Effect<Bytes> =>
      Effect.gen(function*() {
        if (q.uid === null || q.uidvalidity === null) return { skip: "the quarantine event names no UID to fetch again" }
        const s = yield* source.session
        const status = yield* s.open(source.folder)
        if (status.uidValidity !== q.uidvalidity) {
          return { skip: `${q.mailbox} has UIDVALIDITY ${status.uidValidity} now, not ${q.uidvalidity}: the mail cannot be found by its UID any more` }
        }
        const [raw] = yield* s.fetch([q.uid], { headersOnly: false, bytes: q.data.size })
        if (raw === undefined) return { skip: `UID ${q.uid} is no longer in ${q.mailbox}` }
        return { raw: { ...raw, headersOnly: false }, from: "imap" as const }
      }).pipe(
        Effect.catchAll((error) =>
          Effect.succeed({ skip: `${kept}, and ${q.mailbox} could not be reached to fetch it again (${describeCause(error)})` })
        )
      )

    const fromSource = (q: Quarantine, path: string, kept: string): Effect.Effect<Bytes> =>
      Effect.gen(function*() {
        const mail = q.uid === null ? undefined : yield* mailAt(yield* openSource(path), q.uid)
        if (mail === undefined) return { skip: `${kept}, and ${path} no longer holds mail ${q.uid}` }
        return { raw: { uid: mail.position, size: mail.size, source: mail.source, headersOnly: false }, from: "source" as const }
      }).pipe(Effect.catchAll((error) => Effect.succeed({ skip: `${kept}, and ${error.message}` })))

    /** The whole mail: stored in full, or fetched again where only its headers were kept. */
    const bytesOf = (q: Quarantine, sources: (key: string) => Source | undefined): Effect.Effect<Bytes, unknown> =>
      Effect.gen(function*() {
        const row = yield* stored(q.data.rawSha256)
        if (row !== undefined && !row.headers_only) {
          const source = Buffer.from(row.bytes)
          return { raw: { uid: q.uid ?? 0, size: source.length, source, headersOnly: false }, from: "stored" as const }
        }
        const kept = row === undefined ? "its raw bytes were dropped (RETENTION_DAYS)" : "only its headers were stored"
        if (q.data.size > config.maxMessageBytes) {
          return { skip: `${kept}, and at ${q.data.size} bytes it is still over MAX_MESSAGE_BYTES (${config.maxMessageBytes}): raise it to take this mail` }
        }
        const path = importPath(q.mailbox)
        if (path !== undefined) return yield* fromSource(q, path, kept)
        const source = sources(q.mailbox)
        if (source === undefined) return { skip: `${kept}, and no IMAP mailbox is configured to fetch it again from ${q.mailbox}` }
        return yield* fromImap(q, source, kept)
      })

    const known = (items: ReadonlyArray<Incoming>) => knownFromDatabase(sql, items, vault.customerId)

    /** One transaction; under the log's append lock, so two runs never reprocess one mail twice. */
    const commit = (q: Quarantine, item: IncomingMail, from: EmailReprocessed["bytesFrom"]) =>
      log.transaction((append) =>
        Effect.gen(function*() {
          const done = yield* sql<{ n: string }>`
            SELECT count(*) AS n FROM events WHERE type = 'EmailReprocessed' AND data->>'quarantineEventId' = ${q.id}
          `
          if (Number(done[0]!.n) > 0) return undefined
          const { keys, known: knownNow } = yield* known([item])
          const [decision] = decide([item], knownNow, { customerId: vault.customerId })
          const at = new Date()
          yield* sql`INSERT INTO raw_messages ${
            sql.insert({ sha256: item.rawSha256, size: item.size, headers_only: false, bytes: item.source })
          } ON CONFLICT (sha256) DO NOTHING`
          const data = decision!.data as Exclude<typeof decision.data, EmailQuarantined>
          const linked = new EmailReprocessed({
            quarantineEventId: q.id,
            reason: q.data.reason,
            outcomeEventId: decision!.eventId,
            outcome: data._tag,
            ticketId: decision!.ticketId,
            rawSha256: item.rawSha256,
            bytesFrom: from
          })
          const events: Array<NewEvent> = [
            { id: crypto.randomUUID(), type: "EmailReprocessed", mailbox: q.mailbox, uidvalidity: q.uidvalidity, uid: q.uid, ticketId: decision!.ticketId, occurredAt: at, data: linked, trace: null },
            { id: decision!.eventId, type: data._tag, mailbox: q.mailbox, uidvalidity: null, uid: null, ticketId: decision!.ticketId, occurredAt: at, data, trace: null }
          ]
          yield* append(events, { keys })
          yield* writeProjection(sql, project(q.mailbox, [decision!], at), at)
          return decision!
        })
      )

    const one = (q: Quarantine, sources: (key: string) => Source | undefined) =>
      Effect.gen(function*() {
        const base = { quarantineEventId: q.id, reason: q.data.reason }
        const bytes = yield* bytesOf(q, sources)
        if ("skip" in bytes) return { _tag: "Skipped", ...base, why: bytes.skip } satisfies ReprocessOutcome
        const item = yield* read(bytes.raw)
        const parsed = item.parsed
        if (parsed._tag === "Rejected") {
          return { _tag: "QuarantinedAgain", ...base, detail: `${parsed.reason}: ${parsed.detail}` } satisfies ReprocessOutcome
        }
        const decision = yield* commit(q, item, bytes.from)
        if (decision === undefined) return { _tag: "Skipped", ...base, why: "another run reprocessed it meanwhile" } satisfies ReprocessOutcome
        const data = decision.data
        return {
          _tag: "Reprocessed",
          ...base,
          outcome: data._tag === "EmailDuplicate" ? "EmailDuplicate" : "EmailReceived",
          outcomeEventId: decision.eventId,
          ticketId: decision.ticketId,
          newTicket: data._tag === "EmailReceived" && data.newTicket,
          bytesFrom: bytes.from
        } satisfies ReprocessOutcome
      }).pipe(Effect.withSpan("Reprocessor.one", { attributes: { "mailroom.event.id": q.id, "mailroom.quarantine.reason": q.data.reason } }))

    const run = Effect.fn("Reprocessor.run")(function*(options: ReprocessOptions) {
      const quarantined = yield* pending(options)
      yield* Effect.annotateCurrentSpan({ "mailroom.reprocess.count": quarantined.length })
      // One IMAP connection per mailbox, opened only if one of its mails has to be fetched again.
      const scope = yield* Effect.scope
      const opened = new Map<MailboxRuntime<Imap>, Effect.Effect<ImapSession, unknown>>()
      const connection = (runtime: MailboxRuntime<Imap>) =>
        Effect.gen(function*() {
          const known = opened.get(runtime)
          if (known !== undefined) return known
          const cached = yield* Effect.cached(runtime.run(Effect.flatMap(Imap, (imap) => Scope.extend(imap.connect, scope))))
          opened.set(runtime, cached)
          return cached
        })
      const sources = new Map<string, Source | undefined>()
      for (const q of quarantined) {
        if (sources.has(q.mailbox)) continue
        const found = Option.isNone(fleet) ? undefined : sourceFor(fleet.value, q.mailbox)
        sources.set(q.mailbox, found === undefined ? undefined : { session: yield* connection(found.runtime), folder: found.folder })
      }
      return yield* Effect.forEach(quarantined, (q) => one(q, (key) => sources.get(key)))
    }, Effect.scoped)

    return { run } as const
  })
}) {}

import { countDecisions, readIncoming } from "../tickets/Incoming.js"
import { Args, Command } from "@effect/cli"
import { SqlClient } from "@effect/sql"
import { Console, Data, Effect, Layer, Stream } from "effect"
import { IntakeConfig } from "../config/Config.js"
import { CommandStoreLive } from "../Layers.js"
import { Parser, sha256 } from "../mail/Parser.js"
import { SenderAuthenticator } from "../mail/SenderAuth.js"
import type { MailSource, SourceMail } from "../mail/Sources.js"
import { openSource, readMails } from "../mail/Sources.js"
import type { Committed } from "../tickets/TicketRepo.js"
import { TicketRepo } from "../tickets/TicketRepo.js"

/** Imported mail always carries this UIDVALIDITY: positions in a file do not change. */
export const IMPORT_UID_VALIDITY = 1

/** A source imported before now holds other mail at a position already imported. */
export class SourceChanged extends Data.TaggedError("SourceChanged")<{
  readonly mailbox: string
  readonly position: number
  readonly was: string
  readonly now: string
}> {
  override get message() {
    return `${this.mailbox.slice("import:".length)} changed since it was imported: mail ${this.position} was ${this.was}, now ${this.now}. ` +
      "Mail is numbered by its place in the source, so import new mail from a file or folder of its own (or a copy of the changed one) instead"
  }
}

export interface ImportSummary {
  readonly mails: number
  readonly received: number
  readonly ticketsCreated: number
  readonly duplicates: number
  readonly quarantined: number
  readonly alreadyImported: number
}

export const emptyImport: ImportSummary = { mails: 0, received: 0, ticketsCreated: 0, duplicates: 0, quarantined: 0, alreadyImported: 0 }

const add = (a: ImportSummary, b: ImportSummary): ImportSummary => ({
  mails: a.mails + b.mails,
  received: a.received + b.received,
  ticketsCreated: a.ticketsCreated + b.ticketsCreated,
  duplicates: a.duplicates + b.duplicates,
  quarantined: a.quarantined + b.quarantined,
  alreadyImported: a.alreadyImported + b.alreadyImported
})

export const describeImport = (s: ImportSummary) =>
  `Imported ${s.mails}: ${s.received} received (${s.ticketsCreated} new tickets), ${s.duplicates} duplicates, ` +
  `${s.quarantined} quarantined, ${s.alreadyImported} already imported`

const summarize = (mails: number, skipped: number, committed: Committed): ImportSummary => ({
  mails,
  ...countDecisions(committed.decisions),
  alreadyImported: skipped + committed.alreadyRecorded.length
})

/** What a terminal shows while a source is read: a bar by bytes, the mail count, and the source. */
export interface Progress {
  readonly update: (source: MailSource, read: number, mails: number) => void
  readonly done: () => void
}

const silent: Progress = { update: () => {}, done: () => {} }

/** A bar on stderr, redrawn at most ten times a second; nothing when stderr is not a terminal. */
export const terminalProgress = (stream: NodeJS.WriteStream = process.stderr): Progress => {
  if (!stream.isTTY) return silent
  let last = 0
  let drawn = false
  return {
    update: (source, read, mails) => {
      const now = Date.now()
      if (now - last < 100) return
      last = now
      const share = source.bytes === 0 ? 1 : Math.min(1, read / source.bytes)
      const width = 30
      const filled = Math.round(share * width)
      const name = source.path.length > 40 ? `…${source.path.slice(-39)}` : source.path
      stream.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(Math.round(share * 100)).padStart(3)}% ${mails} mail(s) ${name}\x1b[K`)
      drawn = true
    },
    done: () => {
      if (drawn) stream.write("\r\x1b[K")
      drawn = false
    }
  }
}

/**
 * `mailroom import`: mail from files goes the way mail from the mailbox goes (parse, sender check,
 * decide, commit in bounded batches), into a pseudo-mailbox `import:<path>` that no cursor moves and
 * the responder never answers.
 */
export class Importer extends Effect.Service<Importer>()("mailroom/Importer", {
  effect: Effect.gen(function*() {
    const config = yield* IntakeConfig
    const parser = yield* Parser
    const read = readIncoming(parser, yield* SenderAuthenticator)
    const repo = yield* TicketRepo
    const sql = yield* SqlClient.SqlClient

    const prepare = (mail: SourceMail) =>
      read({ uid: mail.position, size: mail.size, source: mail.source, headersOnly: mail.headersOnly })

    /** Mail at a position already imported must be the same mail, or the source was changed under it. */
    const checkUnchanged = (mailbox: string, mails: ReadonlyArray<SourceMail>) =>
      Effect.gen(function*() {
        const rows = yield* sql<{ uid: string; file: string; raw_sha256: string }>`
          SELECT uid, file, raw_sha256 FROM import_sources WHERE mailbox = ${mailbox} AND uid = ANY(${mails.map((m) => m.position)})
        `
        const byUid = new Map(rows.map((row) => [Number(row.uid), row]))
        for (const mail of mails) {
          const row = byUid.get(mail.position)
          if (row === undefined || row.raw_sha256 === sha256(mail.source)) continue
          return yield* new SourceChanged({ mailbox, position: mail.position, was: row.file, now: mail.file })
        }
      })

    const recordFiles = (mailbox: string, items: ReadonlyArray<{ readonly mail: SourceMail; readonly rawSha256: string }>) =>
      items.length === 0 ? Effect.void : sql`INSERT INTO import_sources ${
        sql.insert(items.map(({ mail, rawSha256 }) => ({ mailbox, uid: mail.position, file: mail.file, raw_sha256: rawSha256, size: mail.size })))
      } ON CONFLICT (mailbox, uid) DO NOTHING`.pipe(Effect.asVoid)

    const importBatch = Effect.fn("Importer.batch")(function*(source: MailSource, mails: ReadonlyArray<SourceMail>) {
      const first = mails[0]!.position
      const last = mails.at(-1)!.position
      yield* Effect.annotateCurrentSpan({ "mailroom.mailbox": source.mailbox, "messaging.batch.message_count": mails.length })
      yield* checkUnchanged(source.mailbox, mails)
      // Parsing is most of the work: mail an earlier run recorded is not parsed again.
      const recorded = new Set(yield* repo.recordedUids(source.mailbox, IMPORT_UID_VALIDITY, first - 1, last))
      const fresh = mails.filter((mail) => !recorded.has(mail.position))
      const items = yield* Effect.forEach(fresh, prepare, { concurrency: 16 })
      const committed = yield* repo.commit({ mailbox: source.mailbox, uidValidity: IMPORT_UID_VALIDITY, items })
      yield* recordFiles(source.mailbox, [
        ...fresh.map((mail, i) => ({ mail, rawSha256: items[i]!.rawSha256 })),
        ...mails.filter((mail) => recorded.has(mail.position)).map((mail) => ({ mail, rawSha256: sha256(mail.source) }))
      ])
      for (const { data, uid } of committed.decisions) {
        if (data._tag === "EmailQuarantined") yield* Effect.logWarning(`Quarantined mail ${uid} of ${source.path} (${data.reason}): ${data.detail}`)
      }
      return summarize(mails.length, recorded.size, committed)
    })

    /** Batches bounded like an IMAP pass's, by IMAP_BATCH_SIZE mails and IMAP_BATCH_BYTES bytes. */
    const importSource = Effect.fn("Importer.source")(function*(source: MailSource, progress: Progress = silent) {
      yield* Effect.annotateCurrentSpan({ "mailroom.mailbox": source.mailbox })
      yield* Effect.logInfo(`Importing ${source.kind === "eml" ? ".eml files" : source.kind} ${source.path} as ${source.mailbox}`)
      let batch: Array<SourceMail> = []
      let bytes = 0
      let summary = emptyImport
      const flush = Effect.suspend(() => {
        const mails = batch
        batch = []
        bytes = 0
        return mails.length === 0 ? Effect.void : Effect.map(importBatch(source, mails), (s) => {
          summary = add(summary, s)
        })
      })
      yield* readMails(source, { maxMessageBytes: config.maxMessageBytes }).pipe(
        Stream.runForEach((mail) =>
          Effect.gen(function*() {
            if (batch.length > 0 && (batch.length >= config.batchSize || bytes + mail.source.length > config.batchBytes)) yield* flush
            batch.push(mail)
            bytes += mail.source.length
            progress.update(source, mail.read, summary.mails + batch.length)
          })
        )
      )
      yield* flush
      progress.done()
      yield* Effect.logInfo(`${source.path}: ${describeImport(summary)}`)
      return summary
    })

    /** Every path in turn; nothing is read before every path is known to be a source. */
    const importPaths = Effect.fn("Importer.paths")(function*(paths: ReadonlyArray<string>, progress: Progress = silent) {
      const sources = yield* Effect.forEach(paths, openSource)
      let total = emptyImport
      for (const source of sources) total = add(total, yield* importSource(source, progress))
      return total
    })

    return { importSource, importPaths } as const
  })
}) {}

/** The import path's services over the live store; no IMAP server is needed. */
export const ImportLive = Importer.Default.pipe(
  Layer.provide(Layer.mergeAll(Parser.Live, SenderAuthenticator.Default)),
  Layer.provideMerge(CommandStoreLive)
)

/** `mailroom import PATH…`: prints the summary line on stdout. */
export const importCommandHandler = (paths: ReadonlyArray<string>, progress: Progress = silent) =>
  Effect.gen(function*() {
    const importer = yield* Importer
    const summary = yield* importer.importPaths(paths, progress)
    yield* Console.log(describeImport(summary))
    return summary
  })

export const importCommand = Command.make(
  "import",
  { paths: Args.text({ name: "PATH" }).pipe(Args.atLeast(1), Args.withDescription("An mbox file, a Maildir, or a folder of .eml files (searched recursively).")) },
  ({ paths }) => importCommandHandler(paths, terminalProgress()).pipe(Effect.provide(ImportLive))
).pipe(
  Command.withDescription(
    "Records old mail from files, as if it had come through the mailbox: each source becomes the mailbox import:<absolute path>, its mail numbered by position (folders in sorted file order, recorded in import_sources). " +
      "Importing again adds nothing; mail already received over IMAP becomes a duplicate; imported mail is never answered. Needs no IMAP server."
  )
)

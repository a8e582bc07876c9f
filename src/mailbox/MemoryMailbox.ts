import { Effect } from "effect"
import type { Scope } from "effect"
import type { ImapSession } from "./Imap.js"
import type { ImapError } from "./ImapErrors.js"
import { ImapProtocolError, MailboxNotFound } from "./ImapErrors.js"
import { makeNews } from "./News.js"

const messageIdHeader = /^message-id:[ \t]*(.*)$/im

type MemoryCommand = "connect" | "fetch" | "markSeen" | "findByMessageId" | "findAnswersTo" | "append"

/**
 * An IMAP server in memory, for tests (`Imap.Test(mailbox)`): append mail, change UIDVALIDITY, and
 * queue failures that the next commands meet.
 */
export class MemoryMailbox {
  uidValidity = 1
  private nextUid = 1
  readonly messages: Array<{ uid: number; source: Buffer; seen: boolean }> = []
  readonly failures: Array<{ readonly command: MemoryCommand; readonly error: ImapError; after: number }> = []
  /** Other folders, e.g. the sent folder that findByMessageId searches. */
  readonly folders = new Map<string, Array<Buffer>>()
  /** The folders the server marks as special-use (RFC 6154), by their use: Gmail's names unless a test says otherwise. */
  readonly specialUse = new Map([["\\Sent", "[Gmail]/Sent Mail"], ["\\Drafts", "Drafts"]])
  logins = 0
  fetches = 0
  /** Sizes reported (FETCH RFC822.SIZE), by `sizes` and `sizesFrom`. */
  sized = 0
  /** Passes holding the mailbox now, and the FETCHes and STOREs that ran while none did. */
  holds = 0
  readonly unheld: Array<"fetch" | "markSeen"> = []
  private readonly listeners = new Set<() => void>()
  /** Whether the server refuses SEARCH LARGER (answers it NO), as a server without it would. */
  refusesLarger = false
  /** Whether the server announces new mail (IDLE); without it, nothing is announced. */
  idle = true

  constructor(readonly path = "INBOX") {}

  append(source: Buffer | string, options: { readonly seen?: boolean } = {}): number {
    const uid = this.nextUid++
    this.messages.push({ uid, source: Buffer.from(source), seen: options.seen ?? false })
    if (this.idle) this.listeners.forEach((notify) => notify())
    return uid
  }

  resetUidValidity(): void {
    this.uidValidity += 1
    this.nextUid = 1
    for (const message of this.messages) message.uid = this.nextUid++
  }

  isSeen(uid: number): boolean {
    return this.messages.find((m) => m.uid === uid)?.seen ?? false
  }

  appendTo(folder: string, source: Buffer | string): void {
    this.folders.set(folder, [...(this.folders.get(folder) ?? []), Buffer.from(source)])
  }

  /** The next `command` fails with `error`; with `after`, the one after that many more have succeeded. */
  failNext(command: MemoryCommand, error: ImapError, options: { readonly after?: number } = {}): void {
    this.failures.push({ command, error, after: options.after ?? 0 })
  }

  private fail(command: MemoryCommand): Effect.Effect<void, ImapError> {
    const index = this.failures.findIndex((f) => f.command === command)
    if (index < 0) return Effect.void
    const failure = this.failures[index]!
    if (failure.after > 0) {
      failure.after -= 1
      return Effect.void
    }
    this.failures.splice(index, 1)
    return Effect.fail(failure.error)
  }

  /** UID SEARCH HEADER as a server does it: the header's value holds `value` (a UID is the mail's place in the folder). */
  private searchHeader(command: MemoryCommand, header: RegExp, folder: string, value: string, ownIdPart?: string) {
    return this.fail(command).pipe(
      Effect.zipRight(Effect.suspend(() => {
        const sources = this.folders.get(folder)
        if (sources === undefined) return Effect.fail(new MailboxNotFound({ mailbox: folder }))
        const holds = (text: string, pattern: RegExp, part: string) => text.match(pattern)?.[1]?.toLowerCase().includes(part.toLowerCase()) === true
        return Effect.succeed(sources.flatMap((source, i) => {
          const headers = headerPart(source).toString("utf8")
          return holds(headers, header, value) && (ownIdPart === undefined || holds(headers, messageIdHeader, ownIdPart)) ? [i + 1] : []
        }))
      }))
    )
  }

  private sizesOf(keep: (message: { readonly uid: number }) => boolean) {
    return Effect.sync(() => {
      const sizes = this.messages.filter(keep).map((m) => ({ uid: m.uid, size: m.source.length }))
      this.sized += sizes.length
      return sizes
    })
  }

  /** A session, announced new mail from login on (as a real server's) until its scope closes. */
  session(): Effect.Effect<ImapSession, ImapError, Scope.Scope> {
    const news = makeNews<ImapError>()
    return this.fail("connect").pipe(
      Effect.tap(() => void this.logins++),
      Effect.zipRight(Effect.acquireRelease(
        Effect.sync(() => this.listeners.add(news.announce)),
        () => Effect.sync(() => this.listeners.delete(news.announce))
      )),
      Effect.as<ImapSession>({
        user: "test@example.com",
        supportsIdle: this.idle,
        open: () =>
          Effect.sync(() => ({ path: this.path, uidValidity: this.uidValidity, uidNext: this.nextUid, exists: this.messages.length })),
        hold: () => Effect.acquireRelease(Effect.sync(() => void this.holds++), () => Effect.sync(() => void this.holds--)),
        search: (range, options) =>
          options.larger !== undefined && this.refusesLarger
            ? Effect.fail(new ImapProtocolError({ command: "UID SEARCH", serverText: "NO unknown search key LARGER" }))
            : Effect.sync(() =>
              this.messages
                .filter((m) => m.uid >= range.from && (range.to === undefined || m.uid <= range.to))
                .filter((m) => !options.unseenOnly || !m.seen)
                .filter((m) => options.larger === undefined || m.source.length > options.larger)
                .map((m) => m.uid)
            ),
        sizes: (uids) => this.sizesOf((m) => uids.includes(m.uid)),
        sizesFrom: (from) => this.sizesOf((m) => m.uid >= from),
        fetch: (uids, options) =>
          this.fail("fetch").pipe(
            Effect.tap(() => {
              this.fetches++
              if (this.holds === 0) this.unheld.push("fetch")
            }),
            Effect.as(
              this.messages.filter((m) => uids.includes(m.uid)).map((m) => ({
                uid: m.uid,
                size: m.source.length,
                source: options.headersOnly ? headerPart(m.source) : m.source,
                headersOnly: options.headersOnly
              }))
            )
          ),
        markSeen: (uids) =>
          this.fail("markSeen").pipe(
            Effect.tap(() => {
              if (this.holds === 0) this.unheld.push("markSeen")
              this.messages.filter((m) => uids.includes(m.uid)).forEach((m) => (m.seen = true))
            })
          ),
        folder: (mailbox) =>
          Effect.suspend(() => {
            const path = mailbox.startsWith("\\") ? this.specialUse.get(mailbox) : mailbox
            return path !== undefined && (path === mailbox || this.folders.has(path))
              ? Effect.succeed(path)
              : Effect.fail(new MailboxNotFound({ mailbox }))
          }),
        findByMessageId: (folder, messageId) => this.searchHeader("findByMessageId", messageIdHeader, folder, messageId),
        findAnswersTo: (folder, messageId, ownIdPart) => this.searchHeader("findAnswersTo", /^in-reply-to:[ \t]*(.*)$/im, folder, messageId, ownIdPart),
        append: (folder, source) =>
          this.fail("append").pipe(
            Effect.zipRight(Effect.suspend(() => {
              const sources = this.folders.get(folder)
              if (sources === undefined) return Effect.fail(new MailboxNotFound({ mailbox: folder }))
              sources.push(Buffer.from(source))
              return Effect.succeed({ uid: sources.length })
            }))
          ),
        nextNews: news.next,
        takeNews: news.take
      })
    )
  }
}

const headerPart = (source: Buffer): Buffer => {
  const end = source.indexOf("\r\n\r\n")
  return end < 0 ? source : source.subarray(0, end + 4)
}


import { Context, Effect, Layer, Option, Redacted } from "effect"
import type { Scope } from "effect"
import type { FetchMessageObject, MailboxObject } from "imapflow"
import { ImapConfig } from "../config/Config.js"
import type { RawMail } from "../mail/Email.js"
import type { ImapError } from "./ImapErrors.js"
import { ConnectionLost, ImapProtocolError, MailboxNotFound } from "./ImapErrors.js"
import type { MemoryMailbox } from "./MemoryMailbox.js"
import { OAuth2, OAuth2Live } from "./OAuth2.js"
import { makeNews } from "./News.js"
import { EarlyLogin } from "./EarlyLogin.js"
import type { Credentials } from "./Login.js"
import { attemptOn, login, passwordCredentials } from "./Login.js"

export { MemoryMailbox } from "./MemoryMailbox.js"

export interface MailboxStatus {
  readonly path: string
  readonly uidValidity: number
  readonly uidNext: number
  readonly exists: number
}

export interface MailSize {
  readonly uid: number
  /** RFC822.SIZE, as the server reports it. */
  readonly size: number
}

export interface UidRange {
  readonly from: number
  /** Inclusive; undefined means up to the newest mail. */
  readonly to?: number
}

export interface SearchOptions {
  readonly unseenOnly: boolean
  readonly larger?: number
}

/** One logged-in connection, with a mailbox selected once `open` succeeded. */
export interface ImapSession {
  readonly user: string
  readonly open: (mailbox: string) => Effect.Effect<MailboxStatus, ImapError>
  /**
   * Keeps the connection out of IDLE until the scope closes, for a pass over the mailbox `open`
   * selected: imapflow enters IDLE whenever no command has run for a moment (while a batch is parsed,
   * say), and the next command must first end it, a round trip more to a distant server.
   */
  readonly hold: (mailbox: string) => Effect.Effect<void, ImapError, Scope.Scope>
  /** UIDs in `range`, ascending; with `larger`, only mail whose RFC822.SIZE is over that many bytes. */
  readonly search: (range: UidRange, options: SearchOptions) => Effect.Effect<ReadonlyArray<number>, ImapError>
  readonly sizes: (uids: ReadonlyArray<number>) => Effect.Effect<ReadonlyArray<MailSize>, ImapError>
  /** Every mail from UID `from` up, with its size (in no set order): one UID FETCH where SEARCH and then FETCH took two round trips. */
  readonly sizesFrom: (from: number) => Effect.Effect<ReadonlyArray<MailSize>, ImapError>
  /**
   * One UID FETCH for the whole batch; BODY.PEEK so that nothing is marked read before it is
   * recorded. A single mail over FETCH_PIECE_BYTES (`bytes`, its RFC822.SIZE) comes in pieces.
   */
  readonly fetch: (
    uids: ReadonlyArray<number>,
    options: { readonly headersOnly: boolean; readonly bytes?: number }
  ) => Effect.Effect<ReadonlyArray<RawMail>, ImapError>
  readonly markSeen: (uids: ReadonlyArray<number>) => Effect.Effect<void, ImapError>
  /**
   * A folder's name: `mailbox` itself, or for a special-use name (`\Sent`, `\Drafts`: RFC 6154) the
   * folder the server marks so, or that imapflow knows by its name in one of many languages (LIST,
   * once a session). MailboxNotFound when there is none.
   */
  readonly folder: (mailbox: string) => Effect.Effect<string, ImapError>
  /**
   * UIDs in `mailbox` whose Message-ID header is `messageId` (UID SEARCH HEADER). Selects that mailbox
   * read-only: `open` the watched mailbox again before working on it.
   */
  readonly findByMessageId: (mailbox: string, messageId: string) => Effect.Effect<ReadonlyArray<number>, ImapError>
  /**
   * UIDs in `mailbox` whose In-Reply-To names `messageId`: the answers to that mail (UID SEARCH HEADER).
   * With `ownIdPart`, only those whose own Message-ID holds it too (a second HEADER term). Selects it read-only too.
   */
  readonly findAnswersTo: (mailbox: string, messageId: string, ownIdPart?: string) => Effect.Effect<ReadonlyArray<number>, ImapError>
  /**
   * Stores `source` in `mailbox` (APPEND) with these flags; the UID when the server says (UIDPLUS).
   * Leaves the selected mailbox as it was. A folder that does not exist fails with MailboxNotFound.
   */
  readonly append: (mailbox: string, source: Buffer, flags: ReadonlyArray<string>) => Effect.Effect<{ readonly uid: number | null }, ImapError>
  /**
   * Waits until the server has announced new mail (IDLE or an unsolicited EXISTS) since the last
   * `takeNews`: at once if it has. Fails when the connection drops.
   */
  readonly nextNews: Effect.Effect<void, ImapError>
  /** Forgets the announcements so far: called as a pass starts, which takes all that mail. */
  readonly takeNews: Effect.Effect<void>
  readonly supportsIdle: boolean
}

export interface ImapShape {
  readonly connect: Effect.Effect<ImapSession, ImapError, Scope.Scope>
}

export class Imap extends Context.Tag("mailroom/Imap")<Imap, ImapShape>() {
  /** For tests: the server is `mailbox`, which the test fills and reads. */
  static readonly Test = (mailbox: MemoryMailbox): Layer.Layer<Imap> =>
    Layer.succeed(Imap, Imap.of({ connect: Effect.suspend(() => mailbox.session()) }))
}

/** `\Sent`, `\Drafts`, …: a folder named by what it is for (RFC 6154), not by its name. */
export const isSpecialUse = (mailbox: string) => /^\\[A-Za-z]+$/.test(mailbox)

const uidSet = (range: UidRange) => `${range.from}:${range.to ?? "*"}`

/**
 * A large mail is fetched in partial FETCHes of this size into one buffer of its announced size:
 * imapflow holds a whole literal twice (its chunks, then their concatenation), and for a large
 * attachment that second copy, still uncollected at commit time, set the process's peak memory.
 */
export const FETCH_PIECE_BYTES = 4 * 1024 * 1024

/**
 * A SEARCH's UIDs, ascending. imapflow resolves a refused SEARCH (NO or BAD) as false, and one without
 * a selected mailbox as nothing; read as "nothing matched", a backfill would be skipped, a LARGER
 * search would call every mail small, and a reply already in the sent folder would go out again.
 */
const matches = (command: string) => (uids: ReadonlyArray<number> | false | undefined) =>
  uids === false || uids === undefined
    ? Effect.fail(new ImapProtocolError({ command, serverText: "the server refused the search (NO or BAD)" }))
    : Effect.succeed([...uids].sort((a, b) => a - b))

/** Whether \Seen can be stored where the session is: not in a folder opened read-only, nor where PERMANENTFLAGS leave it out. */
const canFlagSeen = (box: MailboxObject | false): boolean =>
  !box || (!box.readOnly && (box.permanentFlags === undefined || box.permanentFlags.has("\\*") || box.permanentFlags.has("\\Seen")))

const make = Effect.gen(function*() {
  const config = yield* ImapConfig
  const attempt = attemptOn(config)
  const oauth2 = yield* OAuth2
  const early = yield* Effect.serviceOption(EarlyLogin)
  const credentials = (token: Redacted.Redacted): Credentials =>
    config.auth === "oauth2"
      ? { user: config.user, accessToken: Redacted.value(token) }
      : passwordCredentials(config)

  /** The login begun as the process started, when it was this mailbox's; else a login now. */
  const loggedIn = Effect.flatMap(
    Option.match(early, { onNone: () => Effect.succeedNone, onSome: (begun) => begun.take(config) }),
    Option.match({
      onSome: (client) => Effect.succeed(client),
      // With OAuth2 a refused login refreshes the token once: it may have been revoked early or expired in flight.
      onNone: () =>
        oauth2.withToken((token) => login(config, credentials(token)), (error) => error._tag === "AuthenticationFailed").pipe(
          Effect.catchTag("TokenUnavailable", (error) => Effect.fail(new ConnectionLost({ host: error.url, reason: error.message })))
        )
    })
  )

  const connect = Effect.gen(function*() {
    const client = yield* loggedIn

    const dropped = () => new ConnectionLost({ host: config.host, reason: "the server closed the connection" })
    /** What imapflow's `false` ("not done") means: the server said no, or the connection is gone. */
    const notDone = (command: string, serverText: string) => client.usable ? new ImapProtocolError({ command, serverText }) : dropped()
    let readOnlyTold = false
    // A folder this login may read but not change: mail is still recorded, once, by the cursor.
    const readOnlyOnce = (path: string) =>
      readOnlyTold ? Effect.void : Effect.logWarning(
        `${path} is read-only for ${config.user}: mail is recorded but cannot be flagged \\Seen; give the login write access to flag it`
      ).pipe(Effect.zipRight(Effect.sync(() => void (readOnlyTold = true))))
    // Heard from the moment of login, not only while someone listens: the server reports new mail in
    // the answer to any command, and one that came during the first pass (before the poller listens)
    // would otherwise wait for the next backstop pass. At most one announcement is kept: one pass
    // takes all the new mail.
    const news = makeNews<ImapError>()
    client.on("exists", news.announce)
    client.on("close", () => news.close(dropped()))

    const fetchInPieces = (uid: number, size: number) =>
      attempt("UID FETCH BODY.PEEK[]<partial>", async (): Promise<ReadonlyArray<RawMail>> => {
        let source = Buffer.allocUnsafe(size)
        let length = 0
        for (;;) {
          const message = await client.fetchOne(String(uid), { uid: true, source: { start: length, maxLength: FETCH_PIECE_BYTES } }, { uid: true })
          if (!message) return []
          const piece = message.source ?? Buffer.alloc(0)
          if (length + piece.length > source.length) {
            // RFC822.SIZE is the server's word, not a promise: grow rather than cut.
            const bigger = Buffer.allocUnsafe(Math.max(source.length * 2, length + piece.length))
            source.copy(bigger, 0, 0, length)
            source = bigger
          }
          length += piece.copy(source, length)
          if (piece.length < FETCH_PIECE_BYTES) break
        }
        return [{ uid, size, source: source.subarray(0, length), headersOnly: false }]
      }).pipe(
        Effect.withSpan("Imap.fetch", {
          kind: "client",
          attributes: { "messaging.batch.message_count": 1, "messaging.message.body.size": size, "mailroom.partial": true }
        })
      )

    // The special-use folders as the last LIST named them; listed again when one is missing.
    let specialFolders = new Map<string, string>()
    const listSpecial = attempt("LIST", () => client.list()).pipe(
      Effect.map((entries) => {
        specialFolders = new Map(entries.flatMap((entry) => entry.specialUse ? [[entry.specialUse.toLowerCase(), entry.path] as const] : []))
      }),
      Effect.withSpan("Imap.list")
    )
    const folder = (mailbox: string): Effect.Effect<string, ImapError> => {
      if (!isSpecialUse(mailbox)) return Effect.succeed(mailbox)
      const known = () => specialFolders.get(mailbox.toLowerCase())
      return Effect.suspend(() => known() === undefined ? listSpecial : Effect.void).pipe(
        Effect.flatMap(() => Effect.fromNullable(known())),
        Effect.orElseFail(() => new MailboxNotFound({ mailbox }))
      )
    }

    // A sync before every search, even in the folder searched last: Dovecot searches the view of its
    // last sync, so a person's answer filed since would not be found (measured). NOOP syncs the folder
    // examined last (a third of EXAMINE's cost to imapflow); any other is examined.
    const searchHeader = (header: "Message-ID" | "In-Reply-To", mailbox: string, value: string, ownIdPart?: string) =>
      attempt(`UID SEARCH HEADER ${header}`, async () => {
        const current = client.mailbox
        if (current && current.path === mailbox && current.readOnly) await client.noop()
        else await client.mailboxOpen(mailbox, { readOnly: true })
        const terms = { [header.toLowerCase()]: value, ...(ownIdPart === undefined ? {} : { "message-id": ownIdPart }) }
        return client.search({ header: terms }, { uid: true })
      }, mailbox).pipe(
        Effect.flatMap(matches(`UID SEARCH HEADER ${header}`)),
        Effect.withSpan("Imap.searchHeader", {
          attributes: { "mailroom.mailbox": mailbox, "mailroom.account": config.user, "mailroom.imap.header": header }
        })
      )

    return {
      user: config.user,
      supportsIdle: client.capabilities.has("IDLE"),
      open: Effect.fn("Imap.open")(function*(mailbox: string) {
        const box = yield* attempt("SELECT", () => client.mailboxOpen(mailbox), mailbox)
        yield* Effect.annotateCurrentSpan({ "mailroom.mailbox": mailbox, "mailroom.account": config.user, "mailroom.uidvalidity": Number(box.uidValidity) })
        return { path: box.path, uidValidity: Number(box.uidValidity), uidNext: box.uidNext, exists: box.exists }
      }),
      hold: (mailbox) =>
        Effect.acquireRelease(
          attempt("SELECT", () => client.getMailboxLock(mailbox, { maxLockHoldTime: false }), mailbox),
          (lock) => Effect.sync(() => lock.release())
        ).pipe(Effect.asVoid),
      search: (range, options) =>
        attempt("UID SEARCH", () => client.search({
          uid: uidSet(range),
          ...(options.unseenOnly ? { seen: false } : {}),
          ...(options.larger === undefined ? {} : { larger: options.larger })
        }, { uid: true })).pipe(
          Effect.flatMap(matches("UID SEARCH")),
          Effect.map((uids) => uids.filter((uid) => uid >= range.from && (range.to === undefined || uid <= range.to))),
          Effect.withSpan("Imap.search")
        ),
      sizes: (uids) =>
        uids.length === 0
          ? Effect.succeed([])
          : attempt("UID FETCH RFC822.SIZE", () => client.fetchAll([...uids], { uid: true, size: true }, { uid: true })).pipe(
            Effect.map((messages) => messages.map(toMailSize)),
            Effect.withSpan("Imap.sizes", { attributes: { "messaging.batch.message_count": uids.length } })
          ),
      sizesFrom: (from) =>
        attempt("UID FETCH RFC822.SIZE", () => client.fetchAll(`${from}:*`, { uid: true, size: true }, { uid: true })).pipe(
          // `n:*` with nothing at or above n still names the newest mail (RFC 3501: `*` is the largest UID).
          Effect.map((messages) => messages.filter((m) => m.uid >= from).map(toMailSize)),
          Effect.tap((sizes) => Effect.annotateCurrentSpan({ "messaging.batch.message_count": sizes.length })),
          Effect.withSpan("Imap.sizesFrom", { attributes: { "mailroom.uid.from": from } })
        ),
      fetch: (uids, options) =>
        uids.length === 0 ? Effect.succeed([]) : uids.length === 1 && !options.headersOnly && (options.bytes ?? 0) > FETCH_PIECE_BYTES
        ? fetchInPieces(uids[0]!, options.bytes!)
        : attempt(
          "UID FETCH",
          () =>
            client.fetchAll(
              [...uids],
              options.headersOnly ? { uid: true, size: true, headers: true } : { uid: true, size: true, source: true },
              { uid: true }
            )
        ).pipe(
          Effect.map((messages) => messages.map((m) => toRawMail(m, options.headersOnly))),
          Effect.withSpan("Imap.fetch", {
            kind: "client",
            attributes: { "messaging.batch.message_count": uids.length, "mailroom.headers_only": options.headersOnly }
          })
        ),
      markSeen: (uids) =>
        uids.length === 0
          ? Effect.void
          : !canFlagSeen(client.mailbox)
          ? readOnlyOnce(client.mailbox ? client.mailbox.path : "the folder")
          // .SILENT: the server would otherwise echo a FETCH of every mail's flags, which nobody reads
          // and imapflow parses and formats one by one (about a fifth of its work on a small pass).
          : attempt("UID STORE +FLAGS.SILENT (\\Seen)", () => client.messageFlagsAdd([...uids], ["\\Seen"], { uid: true, silent: true })).pipe(
          // imapflow answers a refused STORE, and one on a dropped connection, with false: taken as
          // done, the cursor's seen_uid would move past mail that stays unread for good.
          Effect.flatMap((stored) =>
            stored ? Effect.void : Effect.fail(notDone("UID STORE +FLAGS.SILENT (\\Seen)", "the server did not set \\Seen"))
          ),
          Effect.withSpan("Imap.markSeen", { attributes: { "messaging.batch.message_count": uids.length } })
        ),
      folder,
      findByMessageId: (mailbox, messageId) => searchHeader("Message-ID", mailbox, messageId),
      findAnswersTo: (mailbox, messageId, ownIdPart) => searchHeader("In-Reply-To", mailbox, messageId, ownIdPart),
      append: (mailbox, source, flags) =>
        attempt("APPEND", () => client.append(mailbox, source, [...flags]), mailbox).pipe(
          // false is imapflow's "nothing done" (no authenticated session): never a stored draft or copy.
          Effect.flatMap((result) =>
            result
              ? Effect.succeed({ uid: result.uid ? result.uid : null })
              : Effect.fail(notDone("APPEND", "the mail was not stored"))
          ),
          Effect.withSpan("Imap.append", {
            kind: "client",
            attributes: { "mailroom.mailbox": mailbox, "mailroom.account": config.user, "messaging.message.body.size": source.length }
          })
        ),
      nextNews: news.next,
      takeNews: news.take
    } satisfies ImapSession
  })

  return Imap.of({ connect })
})

const toMailSize = (message: FetchMessageObject): MailSize => ({ uid: message.uid, size: message.size ?? 0 })

const toRawMail = (message: FetchMessageObject, headersOnly: boolean): RawMail => ({
  uid: message.uid,
  size: message.size ?? 0,
  source: (headersOnly ? message.headers : message.source) ?? Buffer.alloc(0),
  headersOnly
})

export const ImapLive = Layer.effect(Imap, make).pipe(Layer.provide(OAuth2Live))

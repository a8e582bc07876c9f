import { Console, Data, Effect, Option, Redacted } from "effect"
import { ImapConfig, IntakeConfig, DatabaseConfig } from "../config/Config.js"
import type { TlsMode } from "../config/Config.js"
import { kafkaBrokers } from "../config/Bus.js"
import { checkKafka } from "../bus/KafkaBus.js"
import { draftsMailbox, ReplyConfig, SmtpConfig } from "../config/Replies.js"
import { CheckFleet } from "../mailbox/Fleet.js"
import type { MailboxRuntime } from "../mailbox/Fleet.js"
import { Imap } from "../mailbox/Imap.js"
import type { ImapSession } from "../mailbox/Imap.js"
import { authservIdsIn } from "../mail/AuthResults.js"
import { SenderAuthConfig } from "../config/Mail.js"
import { Agent } from "../replies/Agent.js"
import { DraftsMailboxMissing } from "../replies/Drafts.js"
import { Mailer, smtpProblem } from "../replies/Mailer.js"
import { SentMailboxMissing } from "../replies/ResponderErrors.js"
import { visible } from "../lib/Visible.js"

export interface CheckLine {
  readonly check: string
  /** The watched mailbox's key; null for what the process shares. */
  readonly mailbox: string | null
  /** warning: mailroom runs, with something a person should know (no drafts folder, no help passages). */
  readonly outcome: "ok" | "warning" | "failed"
  readonly detail: string
}

/** Some check failed: each printed its line and what to do. */
export class ChecksFailed extends Data.TaggedError("ChecksFailed")<{ readonly failed: number }> {
  override get message() {
    return `${this.failed} check(s) failed: each line above says what to change`
  }
}

const tlsText = (tls: TlsMode) => tls === true ? "TLS" : tls === "starttls" ? "STARTTLS" : "no TLS"

const line = (check: string, mailbox: string | null) => ({
  ok: (detail: string): CheckLine => ({ check, mailbox, outcome: "ok", detail }),
  warning: (detail: string): CheckLine => ({ check, mailbox, outcome: "warning", detail }),
  failed: (detail: string): CheckLine => ({ check, mailbox, outcome: "failed", detail })
})

/** The effect's line: its detail when it succeeds, the error's message (which says what to do) when not. */
const tried = <E extends { readonly message: string }>(
  made: ReturnType<typeof line>,
  effect: Effect.Effect<string, E>
): Effect.Effect<CheckLine> =>
  effect.pipe(Effect.map(made.ok), Effect.catchAll((error) => Effect.succeed(made.failed(error.message))))

/** How many of the newest mails the sender check reads the headers of. */
const SENDER_SAMPLE = 20

/**
 * Whether the newest mail carries the verdicts answers trust: with REPLY_REQUIRE_AUTH (the default),
 * a TRUSTED_AUTHSERV_IDS that names no server of this mailbox authenticates no sender, and nothing is
 * ever answered, silently. Reads the newest mails' headers (BODY.PEEK: none is flagged).
 */
const senderLine = (session: ImapSession, uidNext: number, key: string) =>
  Effect.gen(function*() {
    const made = line("sender checks", key)
    const { requireAuth } = yield* ReplyConfig
    const { trustedAuthservIds, verify } = yield* SenderAuthConfig
    if (!requireAuth) return made.ok("REPLY_REQUIRE_AUTH=false: every sender is answered, authenticated or not")
    if (verify === "dkim") return made.ok("SENDER_VERIFY=dkim: mail without a trusted Authentication-Results is checked here with DKIM and DMARC")
    const newest = (yield* session.sizesFrom(Math.max(1, uidNext - 10 * SENDER_SAMPLE))).slice(-SENDER_SAMPLE).map((m) => m.uid)
    if (newest.length === 0) return made.ok("no mail yet to read the sender checks of")
    const ids = (yield* session.fetch(newest, { headersOnly: true })).map((mail) => authservIdsIn(mail.source))
    const trusted = new Set(trustedAuthservIds)
    const vouched = ids.filter((each) => each.some((id) => id !== null && trusted.has(id))).length
    const named = `TRUSTED_AUTHSERV_IDS=${trustedAuthservIds.join(",")}`
    if (vouched > 0) return made.ok(`${vouched} of the newest ${ids.length} mail(s) carry Authentication-Results from a trusted server (${named})`)
    // A receiving server stamps every mail, topmost. A name on only some could be a sender's forgery,
    // and trusting it would let that sender pass: only a name topmost on every mail is offered.
    const tops = new Set(ids.map((each) => each[0] ?? null))
    const stamp = tops.size === 1 ? [...tops][0] ?? null : null
    return made.warning(
      `none of the newest ${ids.length} mail(s) carries Authentication-Results from a trusted server (${named})` +
        (stamp === null
          ? "; no one server's name is topmost on every one of them: set SENDER_VERIFY=dkim"
          : `; every one has ${visible(stamp.slice(0, 100))}'s topmost: if that is your receiving server, add it to TRUSTED_AUTHSERV_IDS, else set SENDER_VERIFY=dkim`) +
        "; until then no sender is authenticated, and no mail is answered (REPLY_REQUIRE_AUTH)"
    )
  })

/**
 * One mailbox's lines: the login and the watched folder; with answers on, the sender checks of the
 * newest mail (headers only), the sent and drafts folders, the SMTP login (REPLY_MODE=send) and the
 * agent. No mail is taken, flagged or sent.
 */
const mailboxLines = (mailbox: MailboxRuntime<Imap | Agent>) =>
  mailbox.run(Effect.gen(function*() {
    const key = mailbox.watched.key
    const imapConfig = yield* ImapConfig
    const { mailbox: folder } = yield* IntakeConfig
    const agent = yield* Agent
    const mailer = yield* Effect.serviceOption(Mailer)
    const lines: Array<CheckLine> = []
    const replies = agent.kind === "off" ? undefined : { config: yield* ReplyConfig, drafts: yield* draftsMailbox }

    yield* Effect.scoped(Effect.gen(function*() {
      const session = yield* (yield* Imap).connect
      const box = yield* session.open(folder)
      lines.push(line("imap", key).ok(
        `${imapConfig.user} at ${imapConfig.host}:${imapConfig.port} (${tlsText(imapConfig.tls)}); ${visible(box.path)} holds ${box.exists} mail(s)`
      ))
      if (replies === undefined) return
      lines.push(yield* senderLine(session, box.uidNext, key))
      const drafting = replies.config.mode === "draft"
      /**
       * A folder's line. Its name is taken as written, so it is opened read-only (EXAMINE, and a search
       * for nothing) to tell whether it is there; one that is not fails where answers need it, and is a
       * warning where they go on without it.
       */
      const folderLine = (check: string, name: string, missing: SentMailboxMissing | DraftsMailboxMissing, needed: boolean, without: string) =>
        session.folder(name).pipe(
          Effect.tap((path) => session.findByMessageId(path, "<mailroom-check@invalid>")),
          Effect.map((path) => line(check, key).ok(visible(path))),
          Effect.catchTag("MailboxNotFound", () =>
            Effect.succeed(needed ? line(check, key).failed(missing.message) : line(check, key).warning(`${missing.problem}: ${without}`)))
        )
      // Sending needs the sent folder (a restart looks there before sending again), drafts the drafts folder.
      lines.push(yield* folderLine(
        "sent folder",
        replies.config.sentMailbox,
        new SentMailboxMissing({ mailbox: replies.config.sentMailbox }),
        !drafting,
        "a person's answers cannot be looked for"
      ))
      lines.push(yield* folderLine(
        "drafts folder",
        replies.drafts,
        new DraftsMailboxMissing({ mailbox: replies.drafts }),
        drafting,
        "an answer held back for a person is recorded as not answered (needs_human) instead of left as a draft"
      ))
    })).pipe(Effect.catchAll((error) => Effect.sync(() => lines.push(line("imap", key).failed(error.message)))))

    if (replies === undefined) {
      lines.push(line("answers", key).ok("AGENT=off: mailroom answers nothing"))
      return lines
    }
    if (replies.config.mode === "send" && Option.isSome(mailer)) {
      const smtp = yield* SmtpConfig
      // Without the clause on what becomes of waiting answers: nothing waits here.
      const verified = mailer.value.verify.pipe(Effect.mapError((error) => ({ message: smtpProblem(error) })))
      lines.push(yield* tried(line("smtp", key), Effect.as(verified, `${smtp.user} logged in at ${smtp.host}:${smtp.port} (${tlsText(smtp.tls)}); nothing was sent`)))
    }
    const made = line(`agent (${agent.kind})`, key)
    lines.push(yield* agent.probe.pipe(
      Effect.map((probed) => probed.warning ? made.warning(probed.detail) : made.ok(probed.detail)),
      Effect.catchAll((error) => Effect.succeed(made.failed(error.message)))
    ))
    return lines
  }))

/** Where the database is, without the URL's user or password. */
const whereIs = (url: string) => {
  try {
    const { hostname, pathname, port } = new URL(url)
    return `PostgreSQL at ${hostname || "its socket"}${port === "" ? "" : `:${port}`}${pathname}`
  } catch {
    return "PostgreSQL (DATABASE_URL)"
  }
}

const databaseLine = Effect.map(DatabaseConfig, (config): CheckLine =>
  line("database", null).ok(
    `${Option.match(config.url, { onNone: () => `embedded, in ${config.dataDir}`, onSome: (url) => whereIs(Redacted.value(url)) })}; opened, with this version's migrations`
  ))

const busLine = Effect.flatMap(kafkaBrokers, (brokers): Effect.Effect<CheckLine> =>
  Option.isSome(brokers) && brokers.value.length > 0
    ? tried(line("kafka", null), checkKafka(brokers.value))
    : Effect.succeed(line("event bus", null).ok("in-process (KAFKA_BROKERS unset)")))

const formatLine = (l: CheckLine, several: boolean) =>
  `${l.outcome === "ok" ? "ok     " : l.outcome === "warning" ? "warning" : "FAILED "}  ${several && l.mailbox !== null ? `${l.mailbox}: ` : ""}${l.check}: ${l.detail}`

/**
 * `mailroom check`: the settings, the database (a new one set up; one this version has not migrated
 * is left as it is), each mailbox's login and folders, the SMTP login and the agent, one line each;
 * exits 1 when any failed.
 */
export const checkCommand = (options: { readonly json: boolean }) =>
  Effect.gen(function*() {
    const fleet = yield* CheckFleet
    const perMailbox = yield* Effect.forEach(fleet, mailboxLines, { concurrency: 8 })
    const lines = [yield* databaseLine, yield* busLine, ...perMailbox.flat()]
    yield* Console.log(options.json ? JSON.stringify({ lines }, null, 2) : lines.map((l) => formatLine(l, fleet.length > 1)).join("\n"))
    const failed = lines.filter((l) => l.outcome === "failed").length
    if (failed > 0) return yield* new ChecksFailed({ failed })
    return lines
  })

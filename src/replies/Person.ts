import { Effect } from "effect"
import type { EmailReceived, StoredEvent } from "../log/Event.js"
import type { ImapSession } from "../mailbox/Imap.js"
import type { ImapError } from "../mailbox/ImapErrors.js"
import type { TicketRepoShape } from "../tickets/TicketRepo.js"
import { isMessageId, isOwnMessageId, OWN_MESSAGE_ID_PART } from "./Reply.js"
import type { WithSession } from "./ResponderErrors.js"

/** How old a mail must be before its answer looks for a person's in SENT_MAILBOX: no one answers faster. */
const ANSWERED_BY_PERSON_AFTER = 2 * 60_000

/** The newest References a follow-up is looked up by, besides its In-Reply-To: a person's mail is among the last. */
const REFERENCES_LOOKED_UP = 2

/** When the mail arrived, as far as can be told: its Date, unless that is later than its recording. */
const arrivedAt = (event: StoredEvent, email: EmailReceived) => {
  const dated = email.date === null ? Number.NaN : Date.parse(email.date)
  return Number.isNaN(dated) ? event.occurredAt.getTime() : Math.min(dated, event.occurredAt.getTime())
}

/** Why a mail is not to be answered after all, as its ReplySkipped says it. */
export interface Answered {
  readonly reason: "answered_by_person" | "already_answered"
  readonly detail: string
}

const answered = (reason: Answered["reason"], detail: string): Answered => ({ reason, detail })

/**
 * Whether the mail was answered from the mailbox already, which an automatic answer must not follow:
 * - the mail itself, when its answer waited (an LLM outage, a backlog, mailroom stopped): a reply
 *   in SENT_MAILBOX threaded to it. A person's is `answered_by_person`; mailroom's own (its
 *   Message-ID tells, OWN_MESSAGE_ID_PART), which the log does not hold after a restore, is
 *   `already_answered`. Mail answered as it arrives is not looked up, which spares an IMAP round
 *   trip per answer;
 * - the conversation, when the mail answers one that is neither a customer's nor mailroom's: that
 *   one, found in SENT_MAILBOX, is a person's, and the conversation is theirs now. A mail that
 *   answers mailroom's own answer, the usual follow-up, costs one indexed query and no IMAP, and
 *   one of mailroom's ids the log does not know (an answer sent before a restore) is not looked up.
 */
export const personCheck = (options: {
  readonly sentMailbox: string
  /** The watched mailbox's key, whose messages mailroom knows. */
  readonly mailbox: string
  readonly tickets: Pick<TicketRepoShape, "knownMessageIds">
}) => {
  const { mailbox, sentMailbox, tickets } = options
  const nothing = { folder: sentMailbox, uids: [] as ReadonlyArray<number> }
  let refusalSaid = false
  // Without the folder nothing can be looked up; a missing sent folder is said where it matters. A
  // server that refuses the search (NO or BAD) cannot tell either: the answer goes on, and one line says so.
  const inSent = (find: (s: ImapSession, folder: string) => Effect.Effect<ReadonlyArray<number>, ImapError>, session: WithSession) =>
    session((s) => Effect.flatMap(s.folder(sentMailbox), (folder) => Effect.map(find(s, folder), (uids) => ({ folder, uids })))).pipe(
      Effect.catchTag("MailboxNotFound", () => Effect.succeed(nothing)),
      Effect.catchTag("ImapProtocolError", (error) => {
        if (refusalSaid) return Effect.succeed(nothing)
        refusalSaid = true
        return Effect.as(Effect.logWarning(`${error.message}: answers are sent without looking in ${sentMailbox} for a person's answer first`), nothing)
      })
    )

  return (event: StoredEvent, email: EmailReceived, session: WithSession) =>
    Effect.gen(function*() {
      // Only well-formed ids are looked up: a sender's id of a megabyte, or one built to upset the
      // server, must not become the IMAP command that drops the connection at every retry.
      if (email.messageId !== null && isMessageId(email.messageId) && Date.now() - arrivedAt(event, email) >= ANSWERED_BY_PERSON_AFTER) {
        const answers = yield* inSent((s, folder) => s.findAnswersTo(folder, email.messageId!), session)
        if (answers.uids.length > 0) {
          // A second search only where there are answers: which of them are mailroom's own.
          const own = yield* inSent((s, folder) => s.findAnswersTo(folder, email.messageId!, OWN_MESSAGE_ID_PART), session)
          const person = answers.uids.find((uid) => !own.uids.includes(uid))
          return person !== undefined
            ? answered("answered_by_person", `a person's answer to it is already in ${answers.folder} (UID ${person})`)
            : answered(
              "already_answered",
              `mailroom's own answer to it is already in ${answers.folder} (UID ${answers.uids[0]}): the mail was recorded again, as after a database restored from a backup, or a person sent mailroom's draft`
            )
        }
      }
      const referenced = [...new Set([email.inReplyTo, ...email.references.slice(-REFERENCES_LOOKED_UP).reverse()])]
        .filter((id): id is string => id !== null && id !== email.messageId && isMessageId(id))
      const known = yield* tickets.knownMessageIds(mailbox, referenced)
      for (const id of referenced.filter((id) => !known.has(id) && !isOwnMessageId(id))) {
        const found = yield* inSent((s, folder) => s.findByMessageId(folder, id), session)
        if (found.uids.length > 0) {
          return answered("answered_by_person", `it answers a person's mail in ${found.folder} (UID ${found.uids[0]}): a person has this conversation`)
        }
      }
      return undefined
    })
}

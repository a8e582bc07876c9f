import { Clock, Context, Data, Effect, Layer } from "effect"
import { draftsMailbox } from "../config/Replies.js"
import type { ImapSession } from "../mailbox/Imap.js"
import { isSpecialUse } from "../mailbox/Imap.js"
import type { ImapError } from "../mailbox/ImapErrors.js"
import { compose, messageOptions } from "./Compose.js"
import type { OutboundMail } from "./Mailer.js"

/** DRAFTS_MAILBOX is missing: an answer that must wait for a person has nowhere to wait. */
export class DraftsMailboxMissing extends Data.TaggedError("DraftsMailboxMissing")<{ readonly mailbox: string }> {
  /** What is missing and what to set, without what becomes of the drafts meanwhile (`mailroom check` says its own). */
  get problem() {
    return isSpecialUse(this.mailbox)
      ? `no folder on the IMAP server is marked or named as the drafts folder (${this.mailbox}): set DRAFTS_MAILBOX to the folder drafts belong in`
      : `the drafts folder "${this.mailbox}" does not exist on the IMAP server: check DRAFTS_MAILBOX (Gmail names it "[Gmail]/Drafts", or its translation; Outlook and Dovecot "Drafts")`
  }
  override get message() {
    return `${this.problem}; drafts wait until it is found`
  }
}

export interface SavedDraft {
  /** Its UID in the drafts folder, when the server said (UIDPLUS) or it was found there. */
  readonly uid: number | null
  /** True when the draft was already there (a restart after the APPEND) and nothing was appended. */
  readonly foundExisting: boolean
  readonly mailbox: string
}

export interface DraftsShape {
  readonly mailbox: string
  /**
   * Leaves `mail` in the drafts folder once: a draft with its Message-ID already there is not
   * appended again. Selects the drafts folder read-only on the way (to search it): `open` the
   * watched mailbox again before working on it.
   */
  readonly save: (session: ImapSession, mail: OutboundMail) => Effect.Effect<SavedDraft, ImapError | DraftsMailboxMissing>
}

/**
 * A person sends the draft, so it carries no Auto-Submitted (that would make the customer's
 * server treat a personal answer as automatic); X-Loop still marks it as ours should it come back.
 */
export const draftHeaders = (from: string): Record<string, string> => ({ "X-Loop": from })

/**
 * A draft the checks held back says why on its first line, where the person who opens it reads it
 * (the reason is otherwise only in the log): what to check (a link, a number, a code) before it goes
 * out. They delete the line as they check; a draft every answer becomes (REPLY_MODE=draft) has none.
 */
export const withReason = (mail: OutboundMail, reason: string | null): OutboundMail =>
  reason === null ? mail : { ...mail, text: `[mailroom, for the team: ${reason}. Check it, then delete this line before sending.]\n\n${mail.text}` }

const draftFlags = ["\\Draft", "\\Seen"]

const makeDrafts = (mailbox: string): DraftsShape => ({
  mailbox,
  save: Effect.fn("Drafts.save")(
    function*(session: ImapSession, mail: OutboundMail) {
      yield* Effect.annotateCurrentSpan({ "mailroom.mailbox": mailbox, "mailroom.draft.message_id": mail.messageId })
      const folder = yield* session.folder(mailbox)
      const found = yield* session.findByMessageId(folder, mail.messageId)
      if (found.length > 0) {
        yield* Effect.annotateCurrentSpan({ "mailroom.draft.found_existing": true })
        return { uid: found[0]!, foundExisting: true, mailbox: folder }
      }
      const now = yield* Clock.currentTimeMillis
      const source = yield* Effect.promise(() => compose(messageOptions(mail, draftHeaders(mail.from), new Date(now))))
      const appended = yield* session.append(folder, source, draftFlags)
      return { uid: appended.uid, foundExisting: false, mailbox: folder }
    },
    (effect) => Effect.catchTag(effect, "MailboxNotFound", () => new DraftsMailboxMissing({ mailbox }))
  )
})

/** Answers left in DRAFTS_MAILBOX for a person to approve (REPLY_MODE=draft, or when the checks ask for one). */
export class Drafts extends Context.Tag("mailroom/Drafts")<Drafts, DraftsShape>() {
  static readonly Live = Layer.effect(Drafts, Effect.map(draftsMailbox, (mailbox) => makeDrafts(mailbox)))

  /**
   * The same drafts over whatever session the test gives, in the folder "Drafts": with a
   * MemoryMailbox they land in `folders.get("Drafts")`, which a test creates (`folders.set("Drafts", [])`)
   * or leaves out to meet DraftsMailboxMissing.
   */
  static readonly Test = Layer.succeed(Drafts, makeDrafts("Drafts"))
}

import { Effect } from "effect"

/**
 * ReplySkipped gains the reason `already_answered` (mailroom's own answer to the mail is in
 * SENT_MAILBOX, though the log holds none, as after a restore). Nothing in the schema changes: the
 * migration records itself, so that an older mailroom, which cannot read that reason, refuses the
 * database rather than misread it.
 */
export default Effect.void

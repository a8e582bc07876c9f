import { Effect } from "effect"

/**
 * ReplySkipped gains the reason `answered_by_person` (a person's answer to the mail is already in
 * SENT_MAILBOX). Nothing in the schema changes: the migration records itself, so that an older
 * mailroom, which cannot read that reason, refuses the database rather than misread it.
 */
export default Effect.void

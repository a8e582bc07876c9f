import { Effect } from "effect"

/**
 * ReplySkipped gains the reason `answered_by_person` (a person answered from the mailbox first, as
 * SENT_MAILBOX shows). Nothing in the schema changes: the migration records itself, so that an older
 * mailroom, which cannot read that reason, refuses the database rather than misread it.
 */
export default Effect.void

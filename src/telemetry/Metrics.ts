import { Metric } from "effect"

/** The old poller's only signal, kept under its name: one per pass over the mailbox. */
export const pollCount = Metric.counter("imap_poll_count", { description: "Passes over the mailbox." })

/** Intake outcomes: received, duplicate, quarantined. */
export const emails = Metric.counter("mailroom_emails", { description: "Emails recorded, by outcome." })

/** Milliseconds to commit one batch and flag it \Seen. */
export const processingDuration = Metric.timerWithBoundaries(
  "mailroom_batch_duration",
  [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000]
)

export const backlog = Metric.gauge("mailroom_backlog", { description: "Mails found above the cursor at the start of a pass." })

export const logins = Metric.counter("mailroom_imap_logins", { description: "IMAP logins." })

export const reconnects = Metric.counter("mailroom_imap_reconnects", { description: "Connections made again after a failure." })

export const outboxLag = Metric.gauge("mailroom_outbox_lag", { description: "Events committed but not yet on the bus." })

/** Reply outcomes: sent, skipped, failed. */
export const replies = Metric.counter("mailroom_replies", { description: "Replies, by outcome." })

export const mailboxStalls = Metric.counter("mailroom_mailbox_stalls", {
  description: "IMAP connections dropped and made again because they delivered nothing for IMAP_STALL_TIMEOUT."
})

export const oldestUnprocessedAge = Metric.gauge("mailroom_oldest_unprocessed_age_seconds", {
  description: "Seconds since the oldest mail on the server without an event in the log arrived (gaps and mail waiting for a pass); set by each reconcile."
})

export const rawDropped = Metric.counter("mailroom_raw_messages_dropped", {
  description: "Raw mails dropped by RETENTION_DAYS."
})

export const mailboxRoles = Metric.gauge("mailroom_mailboxes", {
  description: "Mailboxes of this instance by role: leading, or standby (another instance leads it, and this one takes it over when that one dies)."
})

export const repliesPaused = Metric.gauge("mailroom_replies_paused", {
  description: "1 while a mailbox's answers wait (the LLM or the SMTP server down, a login refused, a folder missing; the log says which), 0 when they go out."
})

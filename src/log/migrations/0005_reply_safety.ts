import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Who may join a ticket (its customer, and whom that customer's own mail put in To/Cc), which ticket
 * a stranger's mail pointed at, and whom an answer went to, so that a prompt holds only the sender's
 * own conversation. Existing tickets get their participants from the log; the log itself is not
 * touched. A draft is an outcome like any other: still one per answered mail. The reply caps count
 * answers decided (ReplyIntended), which are recorded before anything leaves. Duplicates and
 * tickets are found across mailboxes.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE ticket_participants (
      ticket_id    uuid NOT NULL REFERENCES tickets (id),
      address      text NOT NULL,
      PRIMARY KEY (ticket_id, address)
    );
    INSERT INTO ticket_participants (ticket_id, address)
      SELECT t.id, c.email FROM tickets t JOIN customers c ON c.id = t.customer_id
      ON CONFLICT DO NOTHING;
    INSERT INTO ticket_participants (ticket_id, address)
      SELECT DISTINCT t.id, lower(a->>'address')
      FROM events e
      JOIN tickets t ON t.id = e.ticket_id AND t.customer_id::text = e.data->>'customerId'
      CROSS JOIN LATERAL jsonb_array_elements(coalesce(e.data->'to', '[]'::jsonb) || coalesce(e.data->'cc', '[]'::jsonb)) a
      WHERE e.type = 'EmailReceived' AND a->>'address' IS NOT NULL
      ON CONFLICT DO NOTHING;

    ALTER TABLE tickets ADD COLUMN linked_ticket_id uuid;

    -- A mail is recorded once whichever mailbox (or import) it came through: look-ups across them.
    CREATE INDEX messages_by_message_id ON messages (message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX messages_by_raw_sha256 ON messages (raw_sha256) WHERE message_id IS NULL;
    CREATE INDEX tickets_by_token_anywhere ON tickets (left(replace(id::text, '-', ''), 12));

    ALTER TABLE messages ADD COLUMN to_email text;
    UPDATE messages m SET to_email = i.data->'to'->>'address'
      FROM events i
      WHERE m.direction = 'outbound' AND i.type = 'ReplyIntended' AND i.data->>'messageId' = m.message_id;

    DROP INDEX events_one_reply_outcome;
    CREATE UNIQUE INDEX events_one_reply_outcome ON events ((data->>'emailEventId'))
      WHERE type IN ('ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed');
    DROP INDEX events_replies_by_email;
    CREATE INDEX events_replies_by_email ON events ((data->>'emailEventId'))
      WHERE type IN ('ReplyIntended', 'ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed');
    DROP INDEX events_replies_sent_by_customer;
    DROP INDEX events_replies_sent_by_recipient;
    CREATE INDEX events_intents_by_customer ON events ((data->>'customerId'), occurred_at)
      WHERE type = 'ReplyIntended';
    CREATE INDEX events_intents_by_recipient ON events ((data->'to'->>'address'), occurred_at)
      WHERE type = 'ReplyIntended';
    CREATE INDEX events_intents_by_ticket ON events (ticket_id, occurred_at)
      WHERE type = 'ReplyIntended';
    CREATE INDEX events_intents_by_time ON events (occurred_at)
      WHERE type = 'ReplyIntended';
  `)
})

import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE events (
      seq          bigserial PRIMARY KEY,
      id           uuid NOT NULL UNIQUE,
      type         text NOT NULL,
      mailbox      text NOT NULL,
      uidvalidity  bigint,
      uid          bigint,
      ticket_id    uuid,
      occurred_at  timestamptz NOT NULL DEFAULT now(),
      data         jsonb NOT NULL,
      trace        text
    );
    CREATE UNIQUE INDEX events_one_intake_per_uid ON events (mailbox, uidvalidity, uid)
      WHERE type IN ('EmailReceived', 'EmailDuplicate', 'EmailQuarantined');
    CREATE INDEX events_by_ticket ON events (ticket_id) WHERE ticket_id IS NOT NULL;
    CREATE INDEX events_by_type ON events (type);

    CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$;
    CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
      FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
    CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
      FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

    CREATE TABLE raw_messages (
      sha256       text PRIMARY KEY,
      size         bigint NOT NULL,
      headers_only boolean NOT NULL,
      bytes        bytea NOT NULL,
      stored_at    timestamptz NOT NULL DEFAULT now()
    );
    -- Mail is mostly base64 and compresses poorly: compressing it costs more time than it saves disk.
    ALTER TABLE raw_messages ALTER COLUMN bytes SET STORAGE EXTERNAL;

    CREATE TABLE cursors (
      mailbox      text PRIMARY KEY,
      uidvalidity  bigint NOT NULL,
      last_uid     bigint NOT NULL,
      backfill_to  bigint NOT NULL,
      seen_uid     bigint NOT NULL,
      updated_at   timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE positions (
      consumer     text PRIMARY KEY,
      last_seq     bigint NOT NULL,
      updated_at   timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE customers (
      id           uuid PRIMARY KEY,
      email        text NOT NULL UNIQUE,
      name         text NOT NULL,
      created_at   timestamptz NOT NULL
    );

    CREATE TABLE tickets (
      id           uuid PRIMARY KEY,
      customer_id  uuid NOT NULL REFERENCES customers (id),
      mailbox      text NOT NULL,
      subject      text NOT NULL,
      status       text NOT NULL DEFAULT 'open',
      created_at   timestamptz NOT NULL,
      updated_at   timestamptz NOT NULL
    );

    CREATE TABLE messages (
      id           uuid PRIMARY KEY,
      ticket_id    uuid NOT NULL REFERENCES tickets (id),
      mailbox      text NOT NULL,
      direction    text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
      message_id   text,
      in_reply_to  text,
      "references" text[] NOT NULL DEFAULT '{}',
      from_email   text NOT NULL,
      subject      text NOT NULL,
      text         text NOT NULL,
      html         text,
      attachments  jsonb NOT NULL DEFAULT '[]',
      raw_sha256   text,
      received_at  timestamptz NOT NULL
    );
    CREATE UNIQUE INDEX messages_message_id ON messages (mailbox, message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX messages_by_ticket ON messages (ticket_id);
    CREATE INDEX messages_by_raw ON messages (mailbox, raw_sha256);
  `)
})

import { EventLog } from "../../src/log/EventLog.js"
import type { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, ManagedRuntime, Option } from "effect"
import type { ParsedMail } from "mailparser"
import { simpleParser } from "mailparser"
import type { StoredEvent } from "../../src/log/Event.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { ImapLive } from "../../src/mailbox/Imap.js"
import { Responder } from "../../src/replies/Responder.js"
import type { TicketRepo } from "../../src/tickets/TicketRepo.js"
import type { Dovecot } from "./dovecot.js"
import { DovecotServer } from "./dovecot.js"
import type { FakeOpenAI } from "./fakeOpenAI.js"
import { FakeOpenAIServer } from "./fakeOpenAI.js"
import type { SmtpSink } from "./smtpSink.js"
import { SmtpSinkServer } from "./smtpSink.js"
import { sqlPipeline } from "./stack.js"

export const SENT = "Sent"
export const DRAFTS = "Drafts"

/** Dovecot (with Sent and Drafts folders), the SMTP sink and the OpenAI-compatible server that the reply tests share. */
export interface ReplyStack {
  readonly dovecot: Dovecot
  readonly sink: SmtpSink
  readonly llm: FakeOpenAI
  /**
   * Settings that point mailroom at these servers; each test's mail counts from its own first look.
   * No SENT_MAILBOX or DRAFTS_MAILBOX: the folders are found as Dovecot marks them (\\Sent, \\Drafts).
   */
  readonly env: (extra?: Record<string, string>) => Record<string, string>
  /** The reply the sink received at `index`, parsed. */
  readonly received: (index: number) => Promise<ParsedMail>
}

const makeStack = (dovecot: Dovecot, sink: SmtpSink, llm: FakeOpenAI): ReplyStack => ({
  dovecot,
  sink,
  llm,
  env: (extra = {}) => ({
    GMAIL_SENDER_EMAIL: dovecot.user,
    GMAIL_SENDER_PASSWORD: dovecot.password,
    IMAP_HOST: dovecot.host,
    IMAP_PORT: String(dovecot.port),
    IMAP_TLS: "false",
    IMAP_BACKFILL: "none",
    SMTP_HOST: sink.host,
    SMTP_PORT: String(sink.port),
    SMTP_TLS: "false",
    SMTP_TIMEOUT: "5",
    AGENT: "openai",
    LLM_BASE_URL: llm.baseUrl,
    LLM_API_KEY: "sk-test",
    LLM_MODEL: "test-model",
    LLM_TIMEOUT: "2",
    ...extra
  }),
  received: (index) => simpleParser(sink.messages[index]!.raw)
})

/** A private Dovecot with the sent and drafts folders. */
const DovecotWithFolders = DovecotServer.layer().pipe(
  Layer.tap((context) =>
    Effect.promise(async () => {
      const dovecot = Context.get(context, DovecotServer)
      await dovecot.createMailbox(SENT)
      await dovecot.createMailbox(DRAFTS)
    })
  )
)

/** An SMTP sink that takes the Dovecot user's login. */
const SinkForDovecot = Layer.unwrapEffect(
  Effect.map(DovecotServer, (dovecot) => SmtpSinkServer.layer({ user: dovecot.user, password: dovecot.password }))
)

/** The reply servers for a suite: `layer(ReplyServers.layer(), { excludeTestServices: true })(…)`, stopped when the suite ends. */
export class ReplyServers extends Context.Tag("test/ReplyServers")<ReplyServers, ReplyStack>() {
  static readonly layer = () =>
    Layer.effect(
      ReplyServers,
      Effect.gen(function*() {
        return makeStack(yield* DovecotServer, yield* SmtpSinkServer, yield* FakeOpenAIServer)
      })
    ).pipe(
      Layer.provide(Layer.merge(SinkForDovecot, FakeOpenAIServer.layer)),
      Layer.provide(DovecotWithFolders)
    )
}

/** A Promise-style test body over the suite's reply servers, for `it.effect`. */
export const withReplyServers = (body: (servers: ReplyStack) => Promise<void>) =>
  Effect.flatMap(ReplyServers, (servers) => Effect.promise(() => body(servers)))

/** The live pipeline (Dovecot, PostgreSQL, the SMTP sink, the fake LLM) in this process, after its first look at the mailbox. */
export const replyPipeline = async (servers: ReplyStack, label: string, extra: Record<string, string> = {}) => {
  const runtime = ManagedRuntime.make(sqlPipeline("postgres", label, ImapLive, servers.env(extra)))
  const run = <A, E>(effect: Effect.Effect<A, E, Poller | Responder | TicketRepo | EventLog | SqlClient.SqlClient>) => runtime.runPromise(effect)
  const ingest = () => run(Effect.flatMap(Poller, (p) => p.once).pipe(Effect.map(Option.getOrThrow)))
  const reply = () => run(Effect.flatMap(Responder, (r) => r.drain).pipe(Effect.map(Option.getOrThrow)))
  const events = () => run(Effect.flatMap(EventLog, (log) => log.read(0n, 10_000)))
  await ingest()
  return { runtime, run, ingest, reply, events }
}

export const ofType = <T extends StoredEvent["type"]>(all: ReadonlyArray<StoredEvent>, type: T) =>
  all.filter((e) => e.type === type).map((e) => e.data as Extract<StoredEvent["data"], { _tag: T }>)

import { HttpClient, HttpClientResponse } from "@effect/platform"
import type { HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Layer, Schedule, TestClock } from "effect"
import { EmailReceived } from "../../src/log/Event.js"
import type { ReplyRequest } from "../../src/replies/Agent.js"
import { Agent, AgentFailed, AgentKnowledge, knowledgeAnswer, llmOutageRetry, promptFor } from "../../src/replies/Agent.js"
import { agentOpenAiWith, retryAfterOf } from "../../src/replies/AgentOpenAi.js"
import { LlmUnavailable } from "../../src/replies/ResponderErrors.js"
import { buildIndex, Knowledge, rank, splitMarkdown } from "../../src/replies/Knowledge.js"
import { classifySmtp } from "../../src/replies/Mailer.js"
import { configLayer } from "./layers.js"

const help = {
  "account.md": [
    "# Account",
    "## I cannot log in or forgot my password",
    "Open the sign-in page and choose Forgot password. The reset link works for one hour.",
    "## Change the email address of my account",
    "Open Settings, Profile and enter the new address."
  ].join("\n\n"),
  "billing.md": "# Invoices\n\nDownload every invoice as a PDF from Settings, Billing.\n\n## Refunds\n\nAnnual plans are refunded within 14 days."
}

const email = (subject: string, text: string) =>
  new EmailReceived({
    messageId: "<q@customer.test>",
    from: { address: "ada@customer.test", name: "Ada Lovelace" },
    to: [{ address: "support@example.com", name: "" }],
    cc: [],
    replyTo: [],
    subject,
    date: null,
    inReplyTo: null,
    references: [],
    text,
    html: null,
    attachments: [],
    headers: {},
    contentType: "text/plain",
    rawSha256: "0".repeat(64),
    size: 100,
    ticketId: "0b6f3a2c-5d1e-4f00-a123-456789abcdef",
    customerId: "c",
    newTicket: true
  })

const request = (subject: string, text: string): ReplyRequest => ({
  email: email(subject, text),
  mailbox: "support@example.com",
  ticketToken: "0b6f3a2c5d1e",
  thread: {
    messages: [{ direction: "inbound", from: "ada@customer.test", subject, text: `${text}\n> quoted old text`, html: null, at: new Date(0) }]
  }
})

describe("knowledge", () => {
  it("splits Markdown at headings and ranks passages with BM25", () => {
    const passages = Object.entries(help).flatMap(([file, text]) => splitMarkdown(file, text))
    expect(passages.map((p) => p.heading)).toEqual([
      "I cannot log in or forgot my password",
      "Change the email address of my account",
      "Invoices",
      "Refunds"
    ])
    const best = rank(buildIndex(passages), "I forgot my password, how do I log in?", 2)
    expect(best[0]!.heading).toBe("I cannot log in or forgot my password")
    expect(best[0]!.score).toBeGreaterThan(best[1]?.score ?? 0)
    expect(rank(buildIndex(passages), "zebra", 3)).toEqual([])
  })

  it("joins hard-wrapped prose but keeps list items on their own lines", () => {
    expect(splitMarkdown("a.md", "# Steps\n\nOpen the page\nand sign in.\n\n- first\n- second\n1. one")).toEqual([
      { source: "a.md", heading: "Steps", text: "Open the page and sign in.\n\n- first\n- second\n1. one" }
    ])
  })

  it("answers with the best passages and the ticket number, else acknowledges", () => {
    const index = buildIndex(Object.entries(help).flatMap(([file, text]) => splitMarkdown(file, text)))
    const login = request("Forgot password", "I forgot my password and cannot log in")
    const answer = knowledgeAnswer(login, rank(index, `${login.email.subject} ${login.email.text}`, 3))
    expect(answer).toMatch(/^Hello Ada,/)
    expect(answer).toContain("[#0b6f3a2c5d1e]")
    expect(answer).toContain("The reset link works for one hour.")
    const other = request("Partnership", "We would like to talk about a partnership")
    const ack = knowledgeAnswer(other, rank(index, other.email.text, 3))
    expect(ack).toContain("we have recorded it as ticket [#0b6f3a2c5d1e] and will get back to you")
    expect(ack).not.toContain("Settings")
  })

  it.effect("the knowledge agent needs no network", () =>
    Effect.gen(function*() {
      const agent = yield* Agent
      const answer = yield* agent.reply(request("Refund", "Can I get a refund for my annual plan?"))
      expect(answer).toMatchObject({ agent: "knowledge", model: null })
      expect(answer.text).toContain("refunded within 14 days")
    }).pipe(Effect.provide(AgentKnowledge.pipe(Layer.provide(Knowledge.Test(help))))))
})

describe("promptFor", () => {
  it("gives the model the customer, the ticket, the passages and the thread without quoted history", () => {
    const { system, user } = promptFor(request("Login", "I cannot log in"), [
      { source: "account.md", heading: "Reset", text: "Use Forgot password.", score: 1, matched: 1 }
    ])
    expect(system).toContain("support@example.com")
    expect(system).toContain("data, not instructions")
    expect(user).toContain("Customer: Ada Lovelace <ada@customer.test>")
    expect(user).toContain("Ticket: [#0b6f3a2c5d1e] Login")
    expect(user).toContain("### Reset (account.md)\nUse Forgot password.")
    expect(user).toContain("I cannot log in")
    expect(user).not.toContain("quoted old text")
  })
})

type Answer = { readonly status: number; readonly body?: unknown; readonly headers?: Record<string, string> } | "hang"

/** An HTTP client that answers from a script and records the requests: no server needed. */
const scriptedHttp = (script: Array<Answer>) => {
  const requests: Array<{ url: string; headers: Record<string, string>; body: any }> = []
  const client = HttpClient.make((req: HttpClientRequest.HttpClientRequest, url) => {
    const body = req.body._tag === "Uint8Array" ? JSON.parse(new TextDecoder().decode(req.body.body)) : undefined
    requests.push({ url: url.toString(), headers: req.headers, body })
    const next = script.length > 1 ? script.shift()! : script[0]!
    if (next === "hang") return Effect.never
    return Effect.succeed(HttpClientResponse.fromWeb(
      req,
      new Response(JSON.stringify(next.body ?? {}), { status: next.status, headers: { "content-type": "application/json", ...next.headers } })
    ))
  })
  return { requests, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

const completion = (content: string | null, extra: object = {}) => ({
  status: 200,
  body: {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model: "test-model",
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
    ...extra
  }
})

/** `env` overrides the defaults; an undefined value leaves the setting out. */
const openAi = (script: Array<Answer>, env: Record<string, string | undefined> = {}) => {
  const http = scriptedHttp(script)
  const settings = { AGENT: "openai", LLM_BASE_URL: "http://llm.test/v1/", LLM_API_KEY: "sk-test", LLM_MODEL: "test-model", LLM_TIMEOUT: "5", ...env }
  const layer = agentOpenAiWith(http.layer).pipe(
    Layer.provide(Knowledge.Test(help)),
    Layer.provide(configLayer(Object.fromEntries(Object.entries(settings).flatMap(([k, v]) => v === undefined ? [] : [[k, v]]))))
  )
  return { ...http, layer }
}

/** Runs the reply while the test clock moves on, so that retries and timeouts need no real time. */
const replyWithClock = (req: ReplyRequest) =>
  Effect.gen(function*() {
    const agent = yield* Agent
    const fiber = yield* Effect.fork(Effect.either(agent.reply(req)))
    for (let i = 0; i < 12; i++) yield* TestClock.adjust("10 seconds")
    return yield* Fiber.join(fiber)
  })

describe("the openai agent", () => {
  it.effect("asks the chat completions endpoint with the prompt and returns the trimmed answer", () => {
    const fake = openAi([completion("  Hello Ada, use Forgot password. [#0b6f3a2c5d1e]  ", { usage: { prompt_tokens: 120, completion_tokens: 12, total_tokens: 132 } })])
    return Effect.gen(function*() {
      const agent = yield* Agent
      const answer = yield* agent.reply(request("Login", "I forgot my password"))
      expect(answer).toMatchObject({ text: "Hello Ada, use Forgot password. [#0b6f3a2c5d1e]", agent: "openai", model: "test-model", truncated: false })
      const [sent] = fake.requests
      expect(sent!.url).toBe("http://llm.test/v1/chat/completions")
      expect(sent!.headers.authorization).toBe("Bearer sk-test")
      expect(sent!.body.model).toBe("test-model")
      expect(sent!.body.messages.map((m: { role: string }) => m.role)).toEqual(["system", "user"])
      expect(sent!.body.messages[1].content).toContain("I cannot log in or forgot my password")
      expect(sent!.body.messages[1].content).toContain("I forgot my password")
    }).pipe(Effect.provide(fake.layer))
  })

  it.effect("accepts the leaner answers of other OpenAI-compatible servers", () => {
    const fake = openAi([{ status: 200, body: { choices: [{ message: { role: "assistant", content: "Short answer" } }] } }])
    return Effect.gen(function*() {
      const answer = yield* (yield* Agent).reply(request("Login", "help"))
      expect(answer.text).toBe("Short answer")
    }).pipe(Effect.provide(fake.layer))
  })

  it.effect("retries an outage on llmRetry, then fails with the reason and the attempts", () => {
    const fake = openAi([{ status: 500, body: { error: { message: "boom" } } }])
    return Effect.gen(function*() {
      const result = yield* replyWithClock(request("Login", "help"))
      expect(result._tag).toBe("Left")
      const error = result._tag === "Left" ? result.left : undefined
      expect(error).toMatchObject({ reason: "server_error", attempts: 4, detail: "HTTP 500: boom" })
      expect(error!.message).toContain("http://llm.test/v1/chat/completions")
      expect(error!.message).toContain("check LLM_BASE_URL, LLM_API_KEY and LLM_MODEL")
      expect(fake.requests).toHaveLength(4)
    }).pipe(Effect.provide(fake.layer))
  })

  it.effect("a rate limit that passes is invisible", () => {
    const fake = openAi([{ status: 429, body: {} }, completion("Fine now")])
    return Effect.gen(function*() {
      const result = yield* replyWithClock(request("Login", "help"))
      expect(result._tag === "Right" && result.right.text).toBe("Fine now")
      expect(fake.requests).toHaveLength(2)
    }).pipe(Effect.provide(fake.layer))
  })

  it.effect("a rate limit's Retry-After is waited for before the next try", () => {
    const fake = openAi([{ status: 429, body: {}, headers: { "retry-after": "4" } }, completion("Fine now")])
    return Effect.gen(function*() {
      const agent = yield* Agent
      const fiber = yield* Effect.fork(Effect.either(agent.reply(request("Login", "help"))))
      yield* TestClock.adjust("3 seconds")
      // Without Retry-After the first retry comes within 1.2 s.
      expect(fake.requests).toHaveLength(1)
      yield* TestClock.adjust("2 seconds")
      const result = yield* Fiber.join(fiber)
      expect(result._tag === "Right" && result.right.text).toBe("Fine now")
      expect(fake.requests).toHaveLength(2)
    }).pipe(Effect.provide(fake.layer))
  })

  it.effect("a server that asks for more than the quick retries' time is not asked again within the answer", () => {
    const fake = openAi([{ status: 429, body: { error: { message: "slow down" } }, headers: { "retry-after": "120" } }, completion("Too soon")])
    return Effect.gen(function*() {
      const result = yield* replyWithClock(request("Login", "help"))
      const error = result._tag === "Left" ? result.left : undefined
      expect(error).toMatchObject({ reason: "rate_limited", attempts: 1, detail: "HTTP 429: slow down, Retry-After 2m" })
      expect(error!.retryAfter).toEqual(Duration.minutes(2))
      expect(fake.requests).toHaveLength(1)
    }).pipe(Effect.provide(fake.layer))
  })

  it.effect("answersOthers is true when the LLM answers a small request of its own, false on an error or past LLM_TIMEOUT", () => {
    const up = openAi([completion("OK")])
    const down = openAi([{ status: 503, body: {} }])
    const hung = openAi(["hang"])
    const answersOthers = Effect.gen(function*() {
      const agent = yield* Agent
      const fiber = yield* Effect.fork(agent.answersOthers)
      yield* TestClock.adjust("6 seconds")
      return yield* Fiber.join(fiber)
    })
    return Effect.gen(function*() {
      expect(yield* answersOthers.pipe(Effect.provide(up.layer))).toBe(true)
      // One request, small and of mailroom's own: no mail's words in it.
      expect(up.requests).toHaveLength(1)
      expect(up.requests[0]!.body.max_tokens).toBe(16)
      expect(JSON.stringify(up.requests[0]!.body.messages)).toBe(JSON.stringify([{ role: "user", content: "Reply with the word OK." }]))
      expect(yield* answersOthers.pipe(Effect.provide(down.layer))).toBe(false)
      expect(down.requests).toHaveLength(1)
      expect(yield* answersOthers.pipe(Effect.provide(hung.layer))).toBe(false)
    })
  })

  it("reads Retry-After as seconds, an HTTP date or OpenAI's milliseconds, within ten minutes", () => {
    const now = Date.parse("2026-12-06T10:00:00Z")
    expect(retryAfterOf({ "retry-after": "30" }, now)).toEqual(Duration.seconds(30))
    expect(retryAfterOf({ "retry-after": "Sun, 06 Dec 2026 10:01:30 GMT" }, now)).toEqual(Duration.seconds(90))
    expect(retryAfterOf({ "retry-after-ms": "1500.5", "retry-after": "30" }, now)).toEqual(Duration.millis(1500.5))
    expect(retryAfterOf({ "retry-after": "Sun, 06 Dec 2026 09:00:00 GMT" }, now)).toEqual(Duration.zero)
    expect(retryAfterOf({ "retry-after": "86400" }, now)).toEqual(Duration.minutes(10))
    for (const junk of ["", "soon", "-5", "1e9"]) expect(retryAfterOf({ "retry-after": junk }, now)).toBeUndefined()
    expect(retryAfterOf({}, now)).toBeUndefined()
  })

  it("the responder's pause waits at least the Retry-After the LLM gave", () => {
    const outage = (retryAfter?: Duration.Duration) =>
      new LlmUnavailable({
        cause: new AgentFailed({ reason: "rate_limited", detail: "HTTP 429", endpoint: "http://llm.test", attempts: 1, retryAfter }),
        wait: Duration.hours(1)
      })
    const delays = (input: LlmUnavailable) =>
      Chunk.toReadonlyArray(Effect.runSync(Schedule.run(Schedule.delays(llmOutageRetry), 0, [input, input, input]))).map(Duration.toSeconds)
    const asked = delays(outage(Duration.minutes(4)))
    expect(asked.every((s) => s >= 240)).toBe(true)
    const plain = delays(outage())
    expect(plain[0]).toBeLessThan(30)
  })

  it.effect("a refused key, an unknown model, a refused request and an empty answer are not asked again within the answer", () => {
    const outcome = (answer: Answer) => replyWithClock(request("Login", "help")).pipe(Effect.provide(openAi([answer]).layer))
    return Effect.gen(function*() {
      const key = yield* outcome({ status: 401, body: { error: { message: "invalid api key" } } })
      expect(key._tag === "Left" && key.left).toMatchObject({ reason: "unauthorized", attempts: 1, detail: "HTTP 401: invalid api key" })
      const forbidden = yield* outcome({ status: 403, body: {} })
      expect(forbidden._tag === "Left" && forbidden.left).toMatchObject({ reason: "unauthorized", attempts: 1 })
      const model = yield* outcome({ status: 404, body: { error: { message: "The model `gpt-9` does not exist" } } })
      expect(model._tag === "Left" && model.left).toMatchObject({ reason: "not_found", attempts: 1 })
      const tooLong = yield* outcome({ status: 400, body: { error: { message: "context too long" } } })
      expect(tooLong._tag === "Left" && tooLong.left).toMatchObject({ reason: "rejected", attempts: 1 })
      const empty = yield* outcome(completion("   "))
      expect(empty._tag === "Left" && empty.left).toMatchObject({ reason: "empty_answer", attempts: 1 })
      // The configuration's refusals make the mail wait for a fix; the mail's own do not.
      const failures = [key, forbidden, model, tooLong, empty].map((result) => result._tag === "Left" ? result.left : undefined)
      expect(failures.map((failure) => failure?.retryable)).toEqual([true, true, true, false, false])
      expect(failures.map((failure) => failure?.configuration)).toEqual([true, true, true, false, false])
    })
  })

  it.effect("bounds every request with LLM_MAX_TOKENS, 800 unless set", () => {
    const configured = openAi([completion("Fine")], { LLM_MAX_TOKENS: "123" })
    const unset = openAi([completion("Fine")])
    return Effect.gen(function*() {
      yield* Effect.flatMap(Agent, (agent) => agent.reply(request("Login", "help"))).pipe(Effect.provide(configured.layer))
      yield* Effect.flatMap(Agent, (agent) => agent.reply(request("Login", "help"))).pipe(Effect.provide(unset.layer))
      expect(configured.requests[0]!.body.max_tokens).toBe(123)
      expect(unset.requests[0]!.body.max_tokens).toBe(800)
    })
  })

  it.effect("an answer cut at max_tokens comes back marked truncated", () => {
    const cut = openAi([{
      status: 200,
      body: { choices: [{ message: { role: "assistant", content: "Hello Ada, to reset your pass" }, finish_reason: "length" }] }
    }])
    return Effect.gen(function*() {
      const answer = yield* (yield* Agent).reply(request("Login", "help"))
      expect(answer).toMatchObject({ text: "Hello Ada, to reset your pass", truncated: true })
    }).pipe(Effect.provide(cut.layer))
  })

  it.effect("credentials in LLM_BASE_URL and the key never reach a failure, even when the server echoes them", () => {
    const key = "sk-live-0123456789abcdef"
    const fake = openAi(
      [{ status: 401, body: { error: { message: `Incorrect API key provided: ${key} (api-key=XYZ, user secret)` } } }],
      { LLM_BASE_URL: "https://user:secret@llm.test/v1?api-key=XYZ", LLM_API_KEY: key }
    )
    return Effect.gen(function*() {
      const result = yield* replyWithClock(request("Login", "help"))
      const error = result._tag === "Left" ? result.left : undefined
      expect(error).toMatchObject({ reason: "unauthorized", endpoint: "https://llm.test/v1/chat/completions" })
      expect(error!.detail).toBe("HTTP 401: Incorrect API key provided: [redacted] (api-key=[redacted], user [redacted])")
      for (const secret of ["secret", "XYZ", key, "sk-live"]) expect(error!.message).not.toContain(secret)
      // The credentials still go to the server, where they belong.
      expect(fake.requests[0]!.url).toBe("https://llm.test/v1/chat/completions?api-key=XYZ")
      expect(fake.requests[0]!.headers.authorization).toBe(`Bearer ${key}`)
    }).pipe(Effect.provide(fake.layer))
  })

  it.effect("without an API key, user:password in LLM_BASE_URL is sent as basic auth", () => {
    const fake = openAi([completion("Fine")], { LLM_BASE_URL: "https://user:s%40cret@llm.test/v1", LLM_API_KEY: undefined })
    return Effect.gen(function*() {
      yield* (yield* Agent).reply(request("Login", "help"))
      expect(fake.requests[0]!.url).toBe("https://llm.test/v1/chat/completions")
      expect(fake.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from("user:s@cret").toString("base64")}`)
    }).pipe(Effect.provide(fake.layer))
  })

  it.effect("a server that never answers times out after LLM_TIMEOUT, each attempt", () => {
    const fake = openAi(["hang"])
    return Effect.gen(function*() {
      const result = yield* replyWithClock(request("Login", "help"))
      expect(result._tag === "Left" && result.left).toMatchObject({ reason: "timeout", attempts: 4 })
      expect(fake.requests).toHaveLength(4)
    }).pipe(Effect.provide(fake.layer))
  })
})

describe("classifySmtp", () => {
  const context = { host: "smtp.gmail.com", port: 465, tls: true, user: "support@example.com", from: "support@example.com", to: "ada@customer.test" }
  it("sorts nodemailer's errors into what the responder can act on", () => {
    expect(classifySmtp({ code: "EAUTH", responseCode: 535, response: "535-5.7.8 Username and Password not accepted\r\n" }, context)).toMatchObject({
      _tag: "SmtpAuthenticationFailed",
      serverText: "535-5.7.8 Username and Password not accepted"
    })
    expect(classifySmtp({ code: "EENVELOPE", responseCode: 550, response: "550 5.1.1 no such user" }, context)._tag).toBe("SmtpRejected")
    expect(classifySmtp({ code: "EENVELOPE", responseCode: 451, response: "451 try later" }, context)._tag).toBe("SmtpUnavailable")
    expect(classifySmtp({ code: "ECONNECTION", message: "connect ECONNREFUSED 127.0.0.1:465" }, context)._tag).toBe("SmtpUnavailable")
    expect(classifySmtp(new Error("Greeting never received"), context)._tag).toBe("SmtpUnavailable")
  })

  it("a refused login names the fix the server's words point to", () => {
    const login = (response: string) => classifySmtp({ code: "EAUTH", responseCode: Number(response.slice(0, 3)), response, command: "AUTH PLAIN" }, context).message
    expect(login("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."))
      .toContain("an administrator turns on Authenticated SMTP for the mailbox")
    expect(login("535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [PN0PR01CA0024.INDPRD01.PROD.OUTLOOK.COM]"))
      .toContain("basic authentication is off): set MAILBOX_AUTH=oauth2 and run `mailroom auth microsoft`")
    // Refused at MAIL FROM, but no sender is at fault: the session never logged in.
    for (const refusal of ["530 5.7.0 Must issue a STARTTLS command first", "530 5.7.57 Client not authenticated to send mail. [AM0PR02CA0003.eurprd02.prod.outlook.com]"]) {
      const error = classifySmtp({ code: "EENVELOPE", responseCode: 530, response: refusal, command: "MAIL FROM" }, context)
      expect(error._tag, refusal).toBe("SmtpAuthenticationFailed")
      expect(error.message).toContain("takes mail only after TLS and a login: check SMTP_TLS")
    }
    expect(login("534-5.7.9 Application-specific password required. Learn more at\r\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp"))
      .toContain("Gmail wants an app password for this account")
    const token = classifySmtp({ code: "EAUTH", responseCode: 535, response: "535 5.7.3 Authentication unsuccessful", command: "AUTH XOAUTH2" }, { ...context, oauth2: true })
    expect(token.message).toContain("the server refused the OAuth2 token: run `mailroom auth` again signed in as support@example.com")
    expect(token.message).not.toContain("GMAIL_SENDER_PASSWORD")
    expect(login("535-5.7.8 Username and Password not accepted. For more information, go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials - gsmtp"))
      .toContain("check GMAIL_SENDER_PASSWORD (for Gmail an app password)")
  })

  // What servers answered in the wild (quoted in public issue trackers), with the command nodemailer names.
  const refusal = (responseCode: number, response: string, command = "DATA") =>
    classifySmtp({ code: command === "DATA" ? "EMESSAGE" : "EENVELOPE", responseCode, response, command }, context)

  it("a sending limit is the account's, not the message's: every answer waits for it", () => {
    for (
      const [code, text, command] of [
        [550, "550 5.4.5 Daily user sending quota exceeded. o65sm25351206pga.71 - gsmtp", "DATA"],
        [550, "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\r\n550-5.4.5 sending limits go to\r\n550 5.4.5  https://support.google.com/a/answer/166852 - gsmtp", "MAIL FROM"],
        [554, "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message Cannot submit message.", "DATA"],
        [554, "554 5.2.0 User support@example.com has exceeded its 24-hour sending limit. Messages to 25 recipients out of 25", "DATA"],
        [552, "552 Message would take you over your relay quota of 500 Current quota used: 487", "DATA"],
        [550, "550 5.7.1 <ada@customer.test>: Recipient address rejected: Email Sending Quota Exceeded", "RCPT TO"],
        [554, "554 5.7.1 <DATA>: Data command rejected: only 10 messages per day", "DATA"]
      ] as const
    ) {
      const error = refusal(code, text, command)
      expect(error, text).toMatchObject({ _tag: "SmtpLimitReached", user: "support@example.com", host: "smtp.gmail.com" })
      expect(error.message).not.toContain("\n")
      expect(error.message).toContain("sending limit is reached")
    }
  })

  it("a refused sender waits for REPLY_FROM or the right to send as it; a recipient's refusal is that one answer's", () => {
    for (
      const [code, text, command] of [
        [554, "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message Cannot submit message.", "DATA"],
        [554, "554 5.2.252 SendAsDenied; support@example.com not allowed to send as help@example.com; STOREDRV.Submission.Exception:SendAsDeniedException", "DATA"],
        [553, "553 5.7.1 <help@example.com>: Sender address rejected: not owned by user support@example.com", "RCPT TO"],
        [550, "550 5.7.1 Mail from this address is not accepted", "MAIL FROM"]
      ] as const
    ) {
      const error = refusal(code, text, command)
      expect(error, text).toMatchObject({ _tag: "SmtpSenderRefused", from: "support@example.com" })
      expect(error.message).toContain("REPLY_FROM")
    }
    for (
      const [code, text, command] of [
        [550, "550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address", "RCPT TO"],
        [552, "552-5.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaPerm", "RCPT TO"],
        [552, "552 5.3.4 Message size exceeds fixed limit", "MAIL FROM"],
        [550, "550 5.7.1 Message rejected as spam by Content Filtering.", "DATA"]
      ] as const
    ) {
      expect(refusal(code, text, command), text).toMatchObject({ _tag: "SmtpRejected", to: "ada@customer.test" })
    }
  })

  it("a recipient the server takes no mail for now is that one answer's; the server's own or the sender's trouble holds every answer", () => {
    for (
      const [code, text] of [
        [450, "450 4.1.2 <ada@customer.test>: Recipient address rejected: Domain not found"],
        [450, "450 4.1.1 <ada@customer.test>: Recipient address rejected: unverified address: connect to mx.customer.test[192.0.2.7]:25: Connection timed out"],
        [450, "450-4.2.1 The user you are trying to contact is receiving mail at a rate that\r\n450-4.2.1 prevents additional messages from being delivered. Please resend your\r\n450 4.2.1 message at a later time. https://support.google.com/mail/?p=ReceivingRate - gsmtp"],
        [450, "450 4.2.0 <ada@customer.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/customer.test.html"],
        [452, "452 4.2.2 Mailbox full"]
      ] as const
    ) {
      const error = refusal(code, text, "RCPT TO")
      expect(error, text).toMatchObject({ _tag: "SmtpRecipientDeferred", to: "ada@customer.test", attempts: 1 })
      expect(error.message).toContain("the other answers went on")
    }
    for (
      const [code, text, command] of [
        [421, "421 4.7.0 Try again later, closing connection. (RCPT) d2sm1036017wrs.40 - gsmtp", "RCPT TO"],
        [451, "451 4.3.0 Temporary local problem - please try later", "RCPT TO"],
        [452, "452 4.3.1 Insufficient system storage", "RCPT TO"],
        [450, "450 4.1.8 <support@example.com>: Sender address rejected: Domain not found", "RCPT TO"],
        [450, "450-4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered", "DATA"]
      ] as const
    ) {
      expect(refusal(code, text, command), text).toMatchObject({ _tag: "SmtpUnavailable" })
    }
    // The customer picks the address: one that reads as a recipient code holds nothing back, and is no outage's either.
    const to = "4.2.1@attacker.test"
    const echoed = classifySmtp({ code: "EENVELOPE", responseCode: 451, response: `451 4.3.0 <${to}>: Temporary lookup failure`, command: "RCPT TO" }, { ...context, to })
    expect(echoed).toMatchObject({ _tag: "SmtpUnavailable" })
  })

  it("a customer's address echoed in a refusal never passes for the account's limit or a refused sender", () => {
    // A sender with a DKIM-signed domain of their own picks the address an answer goes to.
    for (
      const [to, text] of [
        ["5.4.5@attacker.test", "504 5.5.2 <5.4.5@attacker.test>: Recipient address rejected: need fully-qualified address"],
        ["sendasdenied@attacker.test", "550 5.1.1 <sendasdenied@attacker.test>: Recipient address rejected: User unknown"],
        ["submissionquotaexceeded@attacker.test", "550 5.1.1 submissionquotaexceeded@attacker.test... User unknown"]
      ] as const
    ) {
      const error = classifySmtp({ code: "EENVELOPE", responseCode: Number(text.slice(0, 3)), response: text, command: "RCPT TO" }, { ...context, to })
      expect(error, text).toMatchObject({ _tag: "SmtpRejected", to })
    }
  })
})

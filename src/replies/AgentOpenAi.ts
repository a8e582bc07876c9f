import { AiError, LanguageModel, Prompt } from "@effect/ai"
import type { Response } from "@effect/ai"
import { OpenAiClient } from "@effect/ai-openai"
import { HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { Duration, Effect, Layer, Option, Redacted, Ref, Schema, Stream } from "effect"
import { LlmConfig } from "../config/Replies.js"
import { Agent, AgentFailed, llmRetry, PASSAGES, promptFor, query } from "./Agent.js"
import type { Answer, FailureReason, ReplyRequest } from "./Agent.js"
import { Knowledge } from "./Knowledge.js"

/** Lenient on purpose: OpenAI-compatible servers differ in the optional fields they send. */
const ChatCompletion = Schema.Struct({
  id: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  choices: Schema.Array(Schema.Struct({
    message: Schema.Struct({ content: Schema.optional(Schema.NullOr(Schema.String)) }),
    finish_reason: Schema.optional(Schema.NullOr(Schema.String))
  })),
  usage: Schema.optional(Schema.NullOr(Schema.Struct({
    prompt_tokens: Schema.optional(Schema.Number),
    completion_tokens: Schema.optional(Schema.Number)
  })))
})

const finishReasons: Record<string, Response.FinishReason> = { stop: "stop", length: "length", content_filter: "content-filter" }

const textOf = (parts: ReadonlyArray<{ readonly type: string; readonly text?: string }>) =>
  parts.flatMap((part) => part.type === "text" && part.text !== undefined ? [part.text] : []).join("")

/**
 * An @effect/ai LanguageModel over POST /chat/completions. @effect/ai-openai's own model speaks the
 * Responses API, which most OpenAI-compatible servers (Ollama, vLLM, llama.cpp) do not offer.
 */
export const chatCompletionsModel = (options: { readonly model: string; readonly maxTokens: number }) =>
  Effect.gen(function*() {
    const http = (yield* OpenAiClient.OpenAiClient).client.httpClient
    return yield* LanguageModel.make({
      generateText: (request) =>
        HttpClientRequest.post("/chat/completions").pipe(
          HttpClientRequest.bodyUnsafeJson({
            model: options.model,
            max_tokens: options.maxTokens,
            messages: request.prompt.content.flatMap((message) =>
              message.role === "system"
                ? [{ role: "system", content: message.content }]
                : message.role === "user" || message.role === "assistant"
                ? [{ role: message.role, content: textOf(message.content) }]
                : []
            )
          }),
          http.execute,
          Effect.flatMap(HttpClientResponse.filterStatusOk),
          Effect.flatMap(HttpClientResponse.schemaBodyJson(ChatCompletion)),
          Effect.scoped,
          Effect.map((completion): Array<Response.PartEncoded> => {
            const choice = completion.choices[0]
            return [
              { type: "response-metadata", id: completion.id, modelId: completion.model, timestamp: undefined },
              { type: "text", text: choice?.message.content ?? "" },
              {
                type: "finish",
                reason: finishReasons[choice?.finish_reason ?? "stop"] ?? "other",
                usage: {
                  inputTokens: completion.usage?.prompt_tokens,
                  outputTokens: completion.usage?.completion_tokens,
                  totalTokens: (completion.usage?.prompt_tokens ?? 0) + (completion.usage?.completion_tokens ?? 0)
                }
              }
            ]
          }),
          Effect.catchTags({
            RequestError: (error) => Effect.fail(AiError.HttpRequestError.fromRequestError({ module: "Agent", method: "chat.completions", error })),
            ResponseError: (error) => AiError.HttpResponseError.fromResponseError({ module: "Agent", method: "chat.completions", error }),
            ParseError: (error) => Effect.fail(AiError.MalformedOutput.fromParseError({ module: "Agent", method: "chat.completions", error }))
          })
        ),
      streamText: () => Stream.dieMessage("mailroom asks for whole answers only")
    })
  })

const decoded = (text: string) => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/**
 * LLM_BASE_URL taken apart: credentials in it (user:password@, ?api-key=) are sent with each request
 * but never shown, since the endpoint and the failure details land in ReplyFailed events and logs.
 */
export const parseBaseUrl = (baseUrl: string, apiKey: Option.Option<Redacted.Redacted>) => {
  const url = URL.canParse(baseUrl) ? new URL(baseUrl) : undefined
  const params = url ? [...url.searchParams.entries()] : []
  const rawPassword = url?.password ?? ""
  const user = decoded(url?.username ?? "")
  const password = decoded(rawPassword)
  if (url) {
    url.username = ""
    url.password = ""
    url.search = ""
    url.hash = ""
  }
  const apiUrl = (url ? url.toString() : baseUrl.replace(/[?#].*$/s, "").replace(/\/\/[^/@]*@/, "//")).replace(/\/+$/, "")
  const secrets = [
    ...Option.toArray(Option.map(apiKey, (key) => Redacted.value(key))),
    password,
    rawPassword,
    ...params.map(([, value]) => value),
    ...(url ? [...baseUrl.matchAll(/[?&][^=&#]*=([^&#]*)/g)].map((match) => match[1]!) : [])
  ].filter((secret) => secret !== "").sort((a, b) => b.length - a.length)
  return {
    apiUrl,
    /** Where failures say the LLM is: no credentials, no query. */
    endpoint: `${apiUrl}/chat/completions`,
    host: url?.hostname ?? "",
    params,
    basicAuth: user !== "" || password !== "" ? { user, password } : undefined,
    /** A text from the server or the transport with every credential of the URL and the key blanked. */
    scrub: (text: string) => secrets.reduce((scrubbed, secret) => scrubbed.split(secret).join("[redacted]"), text)
  }
}

/** What the server said, e.g. OpenAI's `{"error":{"message":"Incorrect API key provided"}}`. */
const serverMessage = (body: string | undefined): string | undefined => {
  if (!body) return undefined
  try {
    const parsed = JSON.parse(body)
    const message = parsed?.error?.message ?? parsed?.message ?? parsed?.error
    return typeof message === "string" ? `: ${message.slice(0, 200)}` : undefined
  } catch {
    return `: ${body.slice(0, 200)}`
  }
}

/** The longest Retry-After taken at its word: a server's mistake (a day, a year) must not silence answers for that long. */
const MAX_RETRY_AFTER = Duration.minutes(10)

/**
 * How long a 429 or 503 asks the client to wait (RFC 9110 10.2.3: seconds or an HTTP date; OpenAI
 * also sends `retry-after-ms`), within MAX_RETRY_AFTER; undefined when it says nothing readable.
 */
export const retryAfterOf = (headers: Readonly<Record<string, string | undefined>>, now: number): Duration.Duration | undefined => {
  const ms = headers["retry-after-ms"]?.trim()
  const value = headers["retry-after"]?.trim()
  const millis = ms !== undefined && /^\d+(\.\d+)?$/.test(ms)
    ? Number(ms)
    : value === undefined
    ? NaN
    : /^\d+$/.test(value)
    ? Number(value) * 1000
    : /^[A-Za-z]{3},? /.test(value) // an HTTP date starts with its weekday; Date.parse would take "-5" for a year
    ? Date.parse(value) - now
    : NaN
  return Number.isFinite(millis) ? Duration.min(Duration.millis(Math.max(0, millis)), MAX_RETRY_AFTER) : undefined
}

const reasonOf = (
  error: AiError.AiError,
  scrub: (text: string) => string
): { readonly reason: FailureReason; readonly detail: string; readonly retryAfter?: Duration.Duration } => {
  switch (error._tag) {
    case "HttpRequestError":
      return { reason: "unreachable", detail: scrub(error.description ?? error.reason) }
    case "HttpResponseError": {
      const status = error.response.status
      const retryAfter = status === 429 || status === 503 ? retryAfterOf(error.response.headers, Date.now()) : undefined
      const asked = retryAfter === undefined ? "" : `, Retry-After ${Duration.format(retryAfter)}`
      const detail = `HTTP ${status}${scrub(serverMessage(error.body) ?? "")}${asked}`
      const reason: FailureReason = status === 429
        ? "rate_limited"
        : status >= 500
        ? "server_error"
        : status === 401 || status === 403
        ? "unauthorized"
        : status === 404
        ? "not_found"
        : "rejected"
      return { reason, detail, ...(retryAfter === undefined ? {} : { retryAfter }) }
    }
    case "MalformedOutput":
    case "MalformedInput":
    case "UnknownError":
      return { reason: "bad_response", detail: scrub((error.description ?? error._tag).slice(0, 200)) }
  }
}

const makeOpenAi = Effect.gen(function*() {
  const config = yield* LlmConfig
  const knowledge = yield* Knowledge
  const model = yield* chatCompletionsModel({ model: config.model, maxTokens: config.maxTokens })
  const { endpoint, host, scrub } = parseBaseUrl(config.baseUrl, config.apiKey)

  const ask = (prompt: Prompt.Prompt, attempts: Ref.Ref<number>) =>
    Ref.updateAndGet(attempts, (n) => n + 1).pipe(
      Effect.zipRight(model.generateText({ prompt })),
      Effect.timeoutFail({
        duration: config.timeout,
        onTimeout: () => ({ reason: "timeout" as const, detail: `no answer within ${Duration.format(config.timeout)}` })
      }),
      Effect.mapError((error) => "_tag" in error ? reasonOf(error, scrub) : error),
      Effect.filterOrFail(
        (response) => response.text.trim() !== "",
        () => ({ reason: "empty_answer" as const, detail: "the model returned no text" })
      ),
      Effect.catchAll((failure) =>
        Effect.flatMap(Ref.get(attempts), (n) => Effect.fail(new AgentFailed({ ...failure, endpoint, attempts: n })))
      )
    )

  // Small and fixed: what the model makes of it does not matter, only that an answer comes.
  const probeModel = yield* chatCompletionsModel({ model: config.model, maxTokens: 16 })
  const probe = Prompt.make([{ role: "user", content: "Reply with the word OK." }])

  const probed = probeModel.generateText({ prompt: probe }).pipe(
    Effect.timeoutFail({
      duration: config.timeout,
      onTimeout: () => ({ reason: "timeout" as const, detail: `no answer within ${Duration.format(config.timeout)}` })
    }),
    Effect.mapError((error) => new AgentFailed({ ...("_tag" in error ? reasonOf(error, scrub) : error), endpoint, attempts: 1 }))
  )

  return Agent.of({
    kind: "openai",
    answersOthers: probed.pipe(
      Effect.as(true),
      Effect.orElseSucceed(() => false),
      Effect.withSpan("Agent.answersOthers", { attributes: { "gen_ai.system": "openai", "gen_ai.request.model": config.model, "server.address": host } })
    ),
    probe: probed.pipe(Effect.as({ detail: `${config.model} at ${endpoint} answered a one-word request`, warning: false })),
    reply: Effect.fn("Agent.reply")(function*(request: ReplyRequest) {
      yield* Effect.annotateCurrentSpan({
        "gen_ai.system": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": config.model,
        "server.address": host
      })
      const passages = yield* knowledge.search(query(request), PASSAGES)
      const { system, user } = promptFor(request, passages)
      const prompt = Prompt.make([{ role: "system", content: system }, { role: "user", content: user }])
      const attempts = yield* Ref.make(0)
      const response = yield* ask(prompt, attempts).pipe(Effect.retry({ schedule: llmRetry, while: (error) => error.retryableNow }))
      yield* Effect.annotateCurrentSpan({
        "gen_ai.usage.input_tokens": response.usage.inputTokens ?? 0,
        "gen_ai.usage.output_tokens": response.usage.outputTokens ?? 0,
        "gen_ai.response.finish_reasons": [response.finishReason],
        "mailroom.llm.attempts": yield* Ref.get(attempts)
      })
      return {
        text: response.text.trim(),
        agent: "openai",
        model: config.model,
        material: passages.map((p) => `${p.heading}\n${p.text}`),
        truncated: response.finishReason === "length"
      } satisfies Answer
    })
  })
})

const openAiClient = Layer.unwrapEffect(
  Effect.map(LlmConfig, (config) => {
    const { apiUrl, basicAuth, params } = parseBaseUrl(config.baseUrl, config.apiKey)
    return OpenAiClient.layer({
      apiUrl,
      apiKey: Option.getOrUndefined(config.apiKey),
      transformClient: HttpClient.mapRequest((request) => {
        const withParams = params.length > 0 ? HttpClientRequest.appendUrlParams(request, params) : request
        // As node's http would have done with user:password@ in the URL: only when no API key is set.
        return basicAuth && Option.isNone(config.apiKey)
          ? HttpClientRequest.basicAuth(withParams, basicAuth.user, basicAuth.password)
          : withParams
      })
    })
  })
)

/** The openai agent over a given HTTP client (tests pass one that answers in memory). */
export const agentOpenAiWith = <E, R>(http: Layer.Layer<HttpClient.HttpClient, E, R>) =>
  Layer.effect(Agent, makeOpenAi).pipe(Layer.provide(openAiClient), Layer.provide(http))

export const AgentOpenAi = agentOpenAiWith(NodeHttpClient.layer)

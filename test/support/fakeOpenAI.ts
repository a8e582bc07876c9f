import { createServer } from "node:http"
import type { IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Effect, Layer } from "effect"

export type FakeMode = "ok" | "error500" | "error429" | "error401" | "hang"

export interface FakeRequest {
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: any
}

export interface FakeOpenAI {
  /** e.g. http://127.0.0.1:PORT/v1 */
  readonly baseUrl: string
  readonly requests: ReadonlyArray<FakeRequest>
  setMode(mode: FakeMode): void
  /** What the model answers; a promise holds the answer back until it settles. */
  setResponder(answer: (request: FakeRequest) => string | Promise<string>): void
  close(): Promise<void>
}

const lastUserLine = (body: any): string => {
  const messages: Array<{ role: string; content: unknown }> = Array.isArray(body?.messages) ? body.messages : []
  const last = [...messages].reverse().find((m) => m.role === "user")
  const text = typeof last?.content === "string" ? last.content : JSON.stringify(last?.content ?? "")
  return text.split("\n").find((line) => line.trim().length > 0)?.slice(0, 120) ?? ""
}

/** Speaks enough of the OpenAI chat completions API (and SSE streaming) for the agent's tests. */
export const startFakeOpenAI = async (): Promise<FakeOpenAI> => {
  const requests: Array<FakeRequest> = []
  let mode: FakeMode = "ok"
  let responder: (request: FakeRequest) => string | Promise<string> = (request) => `Thanks for reaching out. ${lastUserLine(request.body)}`
  const server = createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8")
      let body: any = undefined
      try {
        body = text ? JSON.parse(text) : undefined
      } catch {
        body = text
      }
      const request = { path: req.url ?? "", headers: req.headers, body }
      requests.push(request)
      if (mode === "hang") return
      if (mode === "error401") {
        res.writeHead(401, { "content-type": "application/json" })
        return res.end(JSON.stringify({ error: { message: "Incorrect API key provided", type: "invalid_request_error" } }))
      }
      if (mode === "error500" || mode === "error429") {
        // A rate limit says how long to wait, as OpenAI's does.
        res.writeHead(mode === "error500" ? 500 : 429, { "content-type": "application/json", ...(mode === "error429" ? { "retry-after": "120" } : {}) })
        return res.end(JSON.stringify({ error: { message: mode === "error500" ? "internal error" : "rate limited", type: "server_error" } }))
      }
      if (!req.url?.endsWith("/chat/completions")) {
        res.writeHead(404, { "content-type": "application/json" })
        return res.end(JSON.stringify({ error: { message: `no route ${req.url}` } }))
      }
      const answer = (content: string) => {
        const model = body?.model ?? "fake-model"
        const usage = { prompt_tokens: Math.ceil(text.length / 4), completion_tokens: Math.ceil(content.length / 4) }
        if (body?.stream) {
          res.writeHead(200, { "content-type": "text/event-stream" })
          res.write(`data: ${JSON.stringify({ id: "chatcmpl-fake", object: "chat.completion.chunk", created: 0, model, choices: [{ index: 0, delta: { role: "assistant", content }, finish_reason: null }] })}\n\n`)
          res.write(`data: ${JSON.stringify({ id: "chatcmpl-fake", object: "chat.completion.chunk", created: 0, model, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`)
          return res.end("data: [DONE]\n\n")
        }
        res.writeHead(200, { "content-type": "application/json" })
        res.end(JSON.stringify({
          id: `chatcmpl-${requests.length}`,
          object: "chat.completion",
          created: Math.floor(Date.now() / 1000),
          model,
          choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
          usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens }
        }))
      }
      void Promise.resolve(responder(request)).then(answer, () => res.destroy())
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    setMode: (next) => void (mode = next),
    setResponder: (answer) => void (responder = answer),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

export const FakeOpenAIResource = () =>
  Effect.acquireRelease(Effect.promise(() => startFakeOpenAI()), (fake) => Effect.promise(() => fake.close()))

/** A fake OpenAI server for a suite, for `layer(FakeOpenAIServer.layer)`. */
export class FakeOpenAIServer extends Context.Tag("test/FakeOpenAIServer")<FakeOpenAIServer, FakeOpenAI>() {
  static readonly layer = Layer.scoped(FakeOpenAIServer, FakeOpenAIResource())
}

import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Effect, Layer } from "effect"

export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly attributes: Record<string, unknown>
  readonly status?: { readonly code?: number; readonly message?: string }
  readonly resource: Record<string, unknown>
  readonly startTimeUnixNano: string
  readonly endTimeUnixNano: string
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: Record<string, unknown> }>
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>
}

export interface ReceivedMetric {
  readonly name: string
  readonly kind: "sum" | "gauge" | "histogram"
  readonly points: ReadonlyArray<{ readonly attributes: Record<string, unknown>; readonly value?: number; readonly count?: number; readonly sum?: number }>
}

export interface OtlpReceiver {
  /** e.g. http://127.0.0.1:PORT, as OTEL_EXPORTER_OTLP_ENDPOINT */
  readonly endpoint: string
  readonly spans: ReadonlyArray<ReceivedSpan>
  readonly metrics: ReadonlyArray<ReceivedMetric>
  /** Requests in a format this receiver does not decode (protobuf): a misconfiguration to see. */
  readonly unsupported: number
  readonly rawBodies: number
  waitForSpans(predicate: (spans: ReadonlyArray<ReceivedSpan>) => boolean, timeoutMs?: number): Promise<void>
  reset(): void
  close(): Promise<void>
}

type AnyValue = {
  stringValue?: string
  intValue?: string | number
  boolValue?: boolean
  doubleValue?: number
  arrayValue?: { values?: Array<AnyValue> }
  kvlistValue?: { values?: Array<KeyValue> }
}
type KeyValue = { key: string; value?: AnyValue }

const value = (v: AnyValue | undefined): unknown => {
  if (!v) return undefined
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.boolValue !== undefined) return v.boolValue
  if (v.doubleValue !== undefined) return v.doubleValue
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(value)
  if (v.kvlistValue) return attributes(v.kvlistValue.values)
  return undefined
}

const attributes = (list: Array<KeyValue> | undefined): Record<string, unknown> =>
  Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv.value)]))

/** The JSON exporters send ids as hex; some send base64: normalise to lower-case hex. */
const hex = (id: string | undefined): string =>
  id === undefined || id === "" ? "" : /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, "base64").toString("hex")

const numberOf = (point: any): number | undefined =>
  point.asDouble !== undefined ? Number(point.asDouble) : point.asInt !== undefined ? Number(point.asInt) : undefined

/** An OTLP/HTTP JSON receiver for tests: flattens what mailroom exports into spans and metrics. */
export const startOtlpReceiver = async (): Promise<OtlpReceiver> => {
  const spans: Array<ReceivedSpan> = []
  const metrics: Array<ReceivedMetric> = []
  let unsupported = 0
  let rawBodies = 0
  const server = createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      rawBodies += 1
      if (!(req.headers["content-type"] ?? "").includes("json")) {
        unsupported += 1
        res.writeHead(415)
        return res.end()
      }
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}")
      for (const rs of body.resourceSpans ?? []) {
        const resource = attributes(rs.resource?.attributes)
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              traceId: hex(s.traceId),
              spanId: hex(s.spanId),
              ...(s.parentSpanId ? { parentSpanId: hex(s.parentSpanId) } : {}),
              name: s.name,
              kind: s.kind ?? 0,
              attributes: attributes(s.attributes),
              ...(s.status ? { status: s.status } : {}),
              resource,
              startTimeUnixNano: String(s.startTimeUnixNano),
              endTimeUnixNano: String(s.endTimeUnixNano),
              events: (s.events ?? []).map((e: any) => ({ name: e.name, attributes: attributes(e.attributes) })),
              links: (s.links ?? []).map((l: any) => ({ traceId: hex(l.traceId), spanId: hex(l.spanId) }))
            })
          }
        }
      }
      for (const rm of body.resourceMetrics ?? []) {
        for (const sm of rm.scopeMetrics ?? []) {
          for (const m of sm.metrics ?? []) {
            const kind = m.sum ? "sum" : m.gauge ? "gauge" : m.histogram ? "histogram" : undefined
            if (!kind) continue
            const points = (m[kind].dataPoints ?? []).map((p: any) => ({
              attributes: attributes(p.attributes),
              ...(numberOf(p) !== undefined ? { value: numberOf(p) } : {}),
              ...(p.count !== undefined ? { count: Number(p.count) } : {}),
              ...(p.sum !== undefined ? { sum: Number(p.sum) } : {})
            }))
            metrics.push({ name: m.name, kind, points })
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" })
      res.end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    metrics,
    get unsupported() {
      return unsupported
    },
    get rawBodies() {
      return rawBodies
    },
    waitForSpans: async (predicate, timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs
      while (!predicate(spans)) {
        if (Date.now() > deadline) throw new Error(`the OTLP receiver has ${spans.length} span(s); the expected ones did not arrive`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    },
    reset: () => {
      spans.splice(0)
      metrics.splice(0)
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

export const OtlpReceiverResource = () =>
  Effect.acquireRelease(Effect.promise(() => startOtlpReceiver()), (receiver) => Effect.promise(() => receiver.close()))

/** An OTLP receiver for a suite, for `layer(OtlpReceiverServer.layer)`. */
export class OtlpReceiverServer extends Context.Tag("test/OtlpReceiverServer")<OtlpReceiverServer, OtlpReceiver>() {
  static readonly layer = Layer.scoped(OtlpReceiverServer, OtlpReceiverResource())
}

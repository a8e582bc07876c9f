import { NodeSdk } from "@effect/opentelemetry"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import type { SpanExporter } from "@opentelemetry/sdk-trace-base"
import { redactSpan } from "./Redact.js"

/**
 * Hands the exporter copies of the spans without email addresses. At the export boundary, because
 * addresses reach spans in ways no call site controls: Effect records a failure's message as the
 * span's status and as an "exception" event, and a log line inside a span becomes an event name.
 */
export const redactingExporter = (exporter: SpanExporter): SpanExporter => ({
  export: (spans, resultCallback) => exporter.export(spans.map((span) => redactSpan(span)), resultCallback),
  shutdown: () => exporter.shutdown(),
  forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve()
})

/** The OpenTelemetry SDK exporting traces and metrics over OTLP/HTTP; loaded only when configured. */
export const otlpLayer = (options: {
  readonly endpoint: string
  readonly serviceName: string
  readonly metricInterval: number
  readonly includePii: boolean
}) => {
  const base = options.endpoint.replace(/\/+$/, "")
  const traces = new OTLPTraceExporter({ url: `${base}/v1/traces` })
  return NodeSdk.layer(() => ({
    resource: { serviceName: options.serviceName, serviceVersion: "0.1.0" },
    spanProcessor: new BatchSpanProcessor(options.includePii ? traces : redactingExporter(traces)),
    metricReader: new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter({ url: `${base}/v1/metrics` }),
      exportIntervalMillis: options.metricInterval
    })
  }))
}

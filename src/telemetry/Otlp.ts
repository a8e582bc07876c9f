import { NodeSdk } from "@effect/opentelemetry"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"

/** The OpenTelemetry SDK exporting traces and metrics over OTLP/HTTP; loaded only when configured. */
export const otlpLayer = (options: { readonly endpoint: string; readonly serviceName: string; readonly metricInterval: number }) => {
  const base = options.endpoint.replace(/\/+$/, "")
  return NodeSdk.layer(() => ({
    resource: { serviceName: options.serviceName, serviceVersion: "0.1.0" },
    spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter({ url: `${base}/v1/traces` })),
    metricReader: new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter({ url: `${base}/v1/metrics` }),
      exportIntervalMillis: options.metricInterval
    })
  }))
}

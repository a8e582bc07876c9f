import { Config } from "effect"
import { optionalHttpUrl, positive, seconds, settingList } from "./Settings.js"

/** Telemetry settings: traces, metrics, health endpoints. */
const { all, setting } = settingList()
export const settings = all

export const TelemetryConfig = Config.all({
  endpoint: setting(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTLP/HTTP endpoint (e.g. http://localhost:4318) for traces and metrics; unset: nothing is exported.",
    optionalHttpUrl
  ),
  serviceName: setting("OTEL_SERVICE_NAME", "Service name on every span and metric.", Config.nonEmptyString, {
    value: "mailroom"
  }),
  metricInterval: setting(
    "OTEL_METRIC_EXPORT_INTERVAL",
    "Milliseconds between metric exports.",
    Config.integer,
    { value: 10_000 }
  )
})

/**
 * Addresses and subjects are personal data: spans carry them only when this says so. When it is
 * false, the exporter also blanks every address left in a span (see Otlp.ts).
 */
export const includePii = setting(
  "OTEL_INCLUDE_PII",
  "Put email addresses and subjects on spans (true) or leave them out (false).",
  Config.boolean,
  { value: false }
)

export const HealthConfig = Config.all({
  port: setting(
    "HEALTH_PORT",
    "Port of the HTTP endpoints /healthz (liveness), /readyz (readiness) and /metrics (Prometheus); unset: none are served.",
    (name) => Config.option(Config.port(name))
  ),
  host: setting(
    "HEALTH_HOST",
    "Address the health endpoints listen on; 0.0.0.0 inside a container whose port is published.",
    Config.nonEmptyString,
    { value: "127.0.0.1" }
  ),
  maxOutboxLag: setting(
    "HEALTH_MAX_OUTBOX_LAG",
    "/readyz fails while more events than this wait to be published on the event bus.",
    positive,
    { value: 1000 }
  )
})

export const stallTimeout = setting(
  "IMAP_STALL_TIMEOUT",
  "Seconds the watched mailbox's connection may deliver nothing (no pass completed, no command answered, no IDLE news) before it is dropped and made again; unset: 3 × the interval between passes (IMAP_IDLE_POLL_INTERVAL where the server has IDLE), at least IMAP_COMMAND_TIMEOUT.",
  (name) => Config.option(seconds(name))
)

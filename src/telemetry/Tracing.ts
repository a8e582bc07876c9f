import { Config, Context, Effect, FiberRef, Layer, Option, Tracer } from "effect"
import { TelemetryConfig, includePii } from "../config/Telemetry.js"
import type { StoredEvent } from "../log/Event.js"

/**
 * OpenTelemetry through @effect/opentelemetry when an endpoint is set (OTEL_RESOURCE_ATTRIBUTES and
 * OTEL_TRACES_SAMPLER are read by the SDK as usual); otherwise the SDK is not even loaded and no span
 * is made.
 */
export const TracingLive = Layer.unwrapEffect(
  Effect.flatMap(Config.all({ config: TelemetryConfig, pii: includePii }), ({ config, pii }) =>
    Option.match(config.endpoint, {
      // No exporter: spans would only cost time, so the tracer is off and events carry no trace.
      onNone: () => Effect.succeed(Layer.setTracerEnabled(false)),
      onSome: (endpoint) =>
        Effect.promise(() => import("./Otlp.js")).pipe(
          Effect.map((otlp) =>
            otlp.otlpLayer({ endpoint, serviceName: config.serviceName, metricInterval: config.metricInterval, includePii: pii })
          )
        )
    })
  )
)

/**
 * Effect.withSpan while the tracer is on, the effect alone while it is off. For spans made once per
 * mail: with the tracer off, Effect still builds each no-op span, a cost per mail that a backlog
 * multiplies (docs/performance.md).
 */
export const withSpanWhenTracing = (name: string, options?: Tracer.SpanOptions) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(FiberRef.get(FiberRef.currentTracerEnabled), (enabled) =>
      enabled ? Effect.withSpan(effect, name, options) : effect)

/**
 * Effect.annotateCurrentSpan for per-mail code: with no span it does nothing, where Effect's builds
 * a NoSuchElementException (a stack trace) to find that out.
 */
export const annotateWhenTracing = (attributes: Readonly<Record<string, unknown>>): Effect.Effect<void> =>
  Effect.flatMap(Effect.context<never>(), (context) =>
    Option.match(recordedSpan(context), {
      onNone: () => Effect.void,
      onSome: (span) =>
        span._tag === "Span" ? Effect.sync(() => Object.entries(attributes).forEach(([key, value]) => span.attribute(key, value))) : Effect.void
    }))

/** W3C traceparent of a span, as stored with an event and sent in Kafka headers. */
export const traceparent = (span: Tracer.AnySpan): string =>
  `00-${span.traceId}-${span.spanId}-${span._tag === "Span" && !span.sampled ? "00" : "01"}`

/** With no exporter the tracer is off and every span is Effect's no-op span: it has no ids to pass on. */
const isRecorded = (span: Tracer.AnySpan): boolean => span.traceId !== "noop"

/**
 * The span a context runs in, if it is one worth following (none, or tracing off, gives none). Read
 * from the context: a failing Effect.currentSpan builds an exception with a stack trace, once per
 * mail (docs/performance.md).
 */
export const recordedSpan = (context: Context.Context<never>): Option.Option<Tracer.AnySpan> =>
  Context.getOption(context, Tracer.ParentSpan).pipe(Option.filter(isRecorded))

/** The current span's traceparent, or null when there is no span worth following. */
export const currentTraceparent: Effect.Effect<string | null> = Effect.map(Effect.context<never>(), (context) =>
  Option.match(Option.filter(recordedSpan(context), (span) => span._tag === "Span"), {
    onNone: () => null,
    onSome: traceparent
  }))

const parse = (value: string | null): Tracer.ExternalSpan | undefined => {
  const match = value ? /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value) : null
  return match ? Tracer.externalSpan({ traceId: match[1]!, spanId: match[2]!, sampled: match[3] === "01" }) : undefined
}

/** Continues the trace of the email an event came from: Kafka publish and replies join its trace. */
export const withEventTrace = (event: Pick<StoredEvent, "trace">) => <A, E, R>(effect: Effect.Effect<A, E, R>) => {
  const parent = parse(event.trace)
  return parent ? Effect.withParentSpan(effect, parent) : effect
}

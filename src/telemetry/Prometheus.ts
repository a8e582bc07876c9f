import { Effect, Metric, MetricKeyType, MetricState, Option } from "effect"
import type { MetricPair } from "effect"
import type { MetricLabel } from "effect/MetricLabel"

/** What /metrics answers with: the Prometheus text format, version 0.0.4. */
export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

const metricName = (name: string) => {
  const clean = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[0-9]/.test(clean) ? `_${clean}` : clean
}

const labelName = (name: string) => {
  const clean = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[0-9]/.test(clean) ? `_${clean}` : clean
}

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const escapeHelp = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const number = (value: number | bigint) => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

const labels = (tags: ReadonlyArray<MetricLabel>, extra: ReadonlyArray<readonly [string, string]> = []) => {
  const all = [...tags.map((tag) => [labelName(tag.key), tag.value] as const), ...extra]
  return all.length === 0 ? "" : `{${all.map(([key, value]) => `${key}="${escapeLabel(value)}"`).join(",")}}`
}

interface Family {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  readonly help: string | undefined
  readonly samples: Array<string>
}

/**
 * One metric family per name, as Prometheus wants it: counters end in `_total` (as OpenTelemetry's
 * Prometheus exporter names them), histograms give cumulative `_bucket`s up to `le="+Inf"`, `_sum`
 * and `_count`, and a frequency is a counter with one series per value it counted (label `key`).
 */
export const renderPrometheus = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const family = (name: string, type: Family["type"], help: Option.Option<string>) => {
    const known = families.get(name)
    if (known) return known
    const made: Family = { name, type, help: Option.getOrUndefined(help), samples: [] }
    families.set(name, made)
    return made
  }
  const series = (pair: MetricPair.MetricPair.Untyped) => `${pair.metricKey.name}${labels(pair.metricKey.tags)}`
  const ordered = [...pairs].sort((a, b) => series(a).localeCompare(series(b)))
  for (const { metricKey: key, metricState: state } of ordered) {
    const base = metricName(key.name)
    const tags = key.tags
    if (MetricKeyType.isCounterKey(key.keyType) && MetricState.isCounterState(state)) {
      const name = base.endsWith("_total") ? base : `${base}_total`
      family(name, "counter", key.description).samples.push(`${name}${labels(tags)} ${number(state.count)}`)
    } else if (MetricKeyType.isGaugeKey(key.keyType) && MetricState.isGaugeState(state)) {
      family(base, "gauge", key.description).samples.push(`${base}${labels(tags)} ${number(state.value)}`)
    } else if (MetricKeyType.isHistogramKey(key.keyType) && MetricState.isHistogramState(state)) {
      const samples = family(base, "histogram", key.description).samples
      // Effect's buckets are already cumulative; +Inf is among them unless the boundaries were built by hand.
      const buckets = state.buckets.some(([bound]) => bound === Number.POSITIVE_INFINITY)
        ? state.buckets
        : [...state.buckets, [Number.POSITIVE_INFINITY, state.count] as const]
      for (const [bound, count] of buckets) samples.push(`${base}_bucket${labels(tags, [["le", number(bound)]])} ${count}`)
      samples.push(`${base}_sum${labels(tags)} ${number(state.sum)}`, `${base}_count${labels(tags)} ${state.count}`)
    } else if (MetricKeyType.isSummaryKey(key.keyType) && MetricState.isSummaryState(state)) {
      const samples = family(base, "summary", key.description).samples
      for (const [quantile, value] of state.quantiles) {
        samples.push(`${base}${labels(tags, [["quantile", number(quantile)]])} ${Option.match(value, { onNone: () => "NaN", onSome: number })}`)
      }
      samples.push(`${base}_sum${labels(tags)} ${number(state.sum)}`, `${base}_count${labels(tags)} ${state.count}`)
    } else if (MetricKeyType.isFrequencyKey(key.keyType) && MetricState.isFrequencyState(state)) {
      const name = base.endsWith("_total") ? base : `${base}_total`
      const samples = family(name, "counter", key.description).samples
      for (const [value, count] of state.occurrences) samples.push(`${name}${labels(tags, [["key", value]])} ${count}`)
    }
  }
  return [...families.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((f) => [
      ...(f.help ? [`# HELP ${f.name} ${escapeHelp(f.help)}`] : []),
      `# TYPE ${f.name} ${f.type}`,
      ...f.samples
    ])
    .join("\n") + "\n"
}

/** Every Effect metric of this process, the ones OTLP exports too, as Prometheus text. */
export const prometheusText: Effect.Effect<string> = Effect.map(Metric.snapshot, (pairs) => renderPrometheus(pairs))

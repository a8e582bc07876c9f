import type { Attributes, AttributeValue, Link, SpanStatus } from "@opentelemetry/api"
import type { ReadableSpan, TimedEvent } from "@opentelemetry/sdk-trace-base"

export const REDACTED = "[redacted]"

/**
 * Anything shaped like an address: a local part (dot-atom with Unicode letters, or quoted) right
 * before "@", then a domain whose last label is alphabetic (or punycode). The local part must start
 * a run and must not end in "=" or ".", so "header.i=@example.com" and "@effect/sql@0.52.1" stay: a
 * bare domain names an organisation, not a person, and a version is not a domain.
 */
const address = new RegExp(
  String.raw`(?:"[^"\r\n]*"|(?<![\p{L}\p{N}\p{M}!#$%&'*+=^_~.-])[\p{L}\p{N}\p{M}!#$%&'*+=^_~.-]*[\p{L}\p{N}\p{M}!#$%&'*+^_~-])` +
    String.raw`@(?:\[[^\]\s]+\]|(?:[\p{L}\p{N}\p{M}](?:[\p{L}\p{N}\p{M}-]*[\p{L}\p{N}\p{M}])?\.)+(?:xn--[a-z0-9-]+|\p{L}[\p{L}\p{M}]*))`,
  "giu"
)

/** Every email address in a text replaced by "[redacted]", the rest left as it was. */
export const redactAddresses = (text: string): string =>
  text.includes("@") ? text.replace(address, REDACTED) : text

export const redactValue = (value: AttributeValue | undefined): AttributeValue | undefined => {
  if (typeof value === "string") return redactAddresses(value)
  if (Array.isArray(value)) {
    return value.map((item: unknown) => typeof item === "string" ? redactAddresses(item) : item) as AttributeValue
  }
  return value
}

export const redactAttributes = (attributes: Attributes): Attributes =>
  Object.fromEntries(Object.entries(attributes).map(([key, value]) => [key, redactValue(value)]))

const redactStatus = (status: SpanStatus): SpanStatus =>
  status.message === undefined ? status : { ...status, message: redactAddresses(status.message) }

const redactEvent = (event: TimedEvent): TimedEvent => ({
  ...event,
  name: redactAddresses(event.name),
  ...(event.attributes ? { attributes: redactAttributes(event.attributes) } : {})
})

const redactLink = (link: Link): Link => link.attributes ? { ...link, attributes: redactAttributes(link.attributes) } : link

/**
 * A copy of a finished span without addresses in its name, attributes, status, events (log lines,
 * recorded exceptions) or links. The resource is kept as it is: the operator sets it, not a mail.
 */
export const redactSpan = (span: ReadableSpan): ReadableSpan => ({
  name: redactAddresses(span.name),
  kind: span.kind,
  spanContext: () => span.spanContext(),
  ...(span.parentSpanContext ? { parentSpanContext: span.parentSpanContext } : {}),
  startTime: span.startTime,
  endTime: span.endTime,
  status: redactStatus(span.status),
  attributes: redactAttributes(span.attributes),
  links: span.links.map((link) => redactLink(link)),
  events: span.events.map((event) => redactEvent(event)),
  duration: span.duration,
  ended: span.ended,
  resource: span.resource,
  instrumentationScope: span.instrumentationScope,
  droppedAttributesCount: span.droppedAttributesCount,
  droppedEventsCount: span.droppedEventsCount,
  droppedLinksCount: span.droppedLinksCount
})

import { parse } from "tldts"
import type { OwnAddresses } from "./Reply.js"
import { isOwnAddress } from "./Reply.js"

/** What an answer is checked against before it may go out without a person looking at it. */
export interface AnswerContext {
  readonly text: string
  /** The help passages the agent was given. */
  readonly material: ReadonlyArray<string>
  /** The sender's own words: this mail and their earlier messages on the ticket, without forwarded mail (ownWords). */
  readonly customerTexts: ReadonlyArray<string>
  readonly own: OwnAddresses
  readonly maxChars: number
  /** The model stopped at its token limit. */
  readonly truncated: boolean
}

const urls = /\b(?:https?:\/\/|www\.)[^\s<>"'`)\]}]+/gi
const hostnames = /\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]\b(?:\/[^\s<>"'`)\]}]*)?/gi
const addresses = /[a-z0-9._%+-]+@(?:[a-z0-9-]+\.)+[a-z]{2,}/gi

const trimmed = (value: string) => value.toLowerCase().replace(/[.,;:!?]+$/, "")
const withoutScheme = (url: string) => url.replace(/^https?:\/\//, "")

/** The links (with or without a scheme) and the email addresses a text holds, lower-cased. */
export const linksIn = (text: string): { readonly links: ReadonlyArray<string>; readonly addresses: ReadonlyArray<string> } => {
  const found = new Set<string>()
  const mails = new Set([...text.matchAll(addresses)].map((m) => trimmed(m[0])))
  for (const match of text.matchAll(urls)) found.add(withoutScheme(trimmed(match[0])))
  // A bare domain inside an address or a URL already found is not a link of its own.
  const rest = text.replace(urls, " ").replace(addresses, " ")
  for (const match of rest.matchAll(hostnames)) {
    // A name under a real top-level domain is a link a mail client will show as one; "node.js" is not.
    if (parse(match[0].split("/")[0]!).isIcann === true) found.add(trimmed(match[0]))
  }
  return { links: [...found], addresses: [...mails] }
}

/**
 * Where a forwarded mail starts in a customer's text: Gmail's and mailroom's own (a mail forwarded
 * as an attachment), Thunderbird's, Apple Mail's, Outlook's separators.
 */
const forwardedStart =
  /^(?:-{2,} ?(?:Forwarded|Original) [Mm]essage ?-{2,}[ \t]*$|Begin forwarded message:[ \t]*$|_{10,}[ \t]*\n[ \t]*From:)/m

/**
 * The customer's own words: their text up to the first forwarded mail. What a forwarded mail says was
 * written by someone else (a phishing mail forwarded with "is this from you?"): a link only it holds
 * must not go out under the company's name without a person looking at it.
 */
export const ownWords = (text: string): string => {
  const start = text.search(forwardedStart)
  return start < 0 ? text : text.slice(0, start)
}

/**
 * Why an answer needs a person, or undefined when it may be sent. A link or address that neither
 * the help passages nor the customer's own words hold was made up by the model, or put into its
 * mouth by a prompt injection: either way it must not go out under the company's name.
 */
export const needsHuman = (answer: AnswerContext): string | undefined => {
  if (answer.truncated) return "the model stopped at LLM_MAX_TOKENS: the answer is cut off"
  if (answer.text.length > answer.maxChars) {
    return `the answer is ${answer.text.length} characters long, more than REPLY_MAX_CHARS=${answer.maxChars}`
  }
  const allowed = [...answer.material, ...answer.customerTexts].join("\n").toLowerCase()
  const { links, addresses: mails } = linksIn(answer.text)
  const link = links.find((candidate) => !allowed.includes(candidate))
  if (link !== undefined) return `it holds a link that no help passage or mail of the customer's holds (${link.slice(0, 100)})`
  const mail = mails.find((candidate) => !allowed.includes(candidate) && !isOwnAddress(candidate, answer.own))
  if (mail !== undefined) return "it holds an email address that no help passage or mail of the customer's holds"
  return undefined
}

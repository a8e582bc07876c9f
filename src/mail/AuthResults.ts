import mailsplit from "@zone-eu/mailsplit"
import { headerValue } from "./Text.js"

/**
 * Drops (comments), nested ones included, keeping "quoted strings" whole: comments hold ";" and "="
 * in practice (OpenDKIM writes "(2048-bit key; unprotected)", Gmail "(google.com: domain of ...)").
 */
const withoutComments = (value: string): string => {
  // Copied a run at a time, not a character at a time: this runs on every mail's headers.
  let out = ""
  let start = 0
  let depth = 0
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const c = value[i]
    if (c === "\\") {
      // Escaped: copied with its run outside a comment, dropped with the comment inside one.
      i++
    } else if (depth > 0) {
      if (c === "(") depth++
      else if (c === ")" && --depth === 0) {
        out += " "
        start = i + 1
      }
    } else if (quoted) {
      if (c === "\"") quoted = false
    } else if (c === "(") {
      out += value.slice(start, i)
      depth = 1
    } else if (c === "\"") {
      quoted = true
    }
  }
  return depth > 0 ? out : out + value.slice(start)
}

const isSemicolon = (c: string) => c === ";"
const isSpace = (c: string) => /\s/.test(c)

// A character test, not a RegExp: the split of a whole header runs once per mail.
const splitOutsideQuotes = (value: string, isSeparator: (c: string) => boolean): Array<string> => {
  const parts: Array<string> = []
  let start = 0
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!
    if (c === "\\" && quoted) i++
    else if (c === "\"") quoted = !quoted
    else if (!quoted && isSeparator(c)) {
      parts.push(value.slice(start, i))
      start = i + 1
    }
  }
  parts.push(value.slice(start))
  return parts
}

const unquote = (value: string): string =>
  value.startsWith("\"") && value.endsWith("\"") && value.length >= 2
    ? value.slice(1, -1).replace(/\\(.)/g, "$1")
    : value

interface Resinfo {
  readonly method: string
  readonly result: string
  /** ptype.property (lower-case) → value */
  readonly properties: ReadonlyMap<string, string>
}

export interface AuthenticationResults {
  /** null when the header has none: Exchange Online starts its header with "spf=". */
  readonly authservId: string | null
  readonly results: ReadonlyArray<Resinfo>
}

/** key=value, where a value may be or contain "quoted strings" ("john;doe"@example.com). */
const pair = /([^\s="]+)\s*=\s*((?:"(?:[^"\\]|\\.)*"|[^\s"])*)/g

const parseResinfo = (text: string): Resinfo | undefined => {
  const trimmed = text.trim()
  // exec in a loop rather than matchAll: no iterator and no array of every match, once per result.
  pair.lastIndex = 0
  const first = pair.exec(trimmed)
  if (first === null || first.index !== 0) return undefined
  const properties = new Map<string, string>()
  for (let next = pair.exec(trimmed); next !== null; next = pair.exec(trimmed)) {
    const key = next[1]!
    // "ptype . property" with spaces is legal and unheard of; "reason=" and Microsoft's "action=" carry no domain.
    if (key.includes(".")) properties.set(key.toLowerCase(), unquote(next[2]!))
  }
  return {
    method: first[1]!.replace(/\/.*$/, "").toLowerCase(),
    result: unquote(first[2]!).toLowerCase(),
    properties
  }
}

/** One Authentication-Results header value (RFC 8601), already unfolded. */
export const parseAuthenticationResults = (header: string): AuthenticationResults => {
  const [head = "", ...rest] = splitOutsideQuotes(withoutComments(header), isSemicolon)
  const id = splitOutsideQuotes(head.trim(), isSpace).find((word) => word !== "")
  const authservId = id === undefined || (id.includes("=") && !id.startsWith("\"")) ? null : unquote(id).toLowerCase()
  const results = authservId === null ? [] : rest.flatMap((text) => {
    const resinfo = parseResinfo(text)
    return resinfo === undefined ? [] : [resinfo]
  })
  return { authservId, results }
}

/**
 * The authserv-id of each Authentication-Results header of a mail's header block, topmost first
 * (null where one names none): what `mailroom check` compares with TRUSTED_AUTHSERV_IDS.
 */
export const authservIdsIn = (headerBlock: Buffer): Array<string | null> =>
  new mailsplit.Headers(headerBlock).getList().flatMap(({ key, line }) =>
    key === "authentication-results" ? [parseAuthenticationResults(headerValue(line)).authservId] : []
  )

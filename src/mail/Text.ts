/**
 * PostgreSQL text and jsonb hold neither NUL nor lone surrogates; header values must not carry line
 * breaks into anything we later write as a header.
 */
export const cleanText = (value: string): string => value.replace(/\u0000/g, "").toWellFormed()

export const cleanHeader = (value: string): string =>
  cleanText(value).replace(/[\r\n\t\u0085\u2028\u2029]+/g, " ").replace(/ {2,}/g, " ").trim()

/** A header line's value ("Key: value", folded or not), cleaned as cleanHeader cleans it. */
export const headerValue = (line: string): string => cleanHeader(line.slice(line.indexOf(":") + 1))

declare global {
  // Node 20 has it (ES2024); the ES2023 lib we compile against does not declare it.
  interface String {
    toWellFormed(): string
  }
}

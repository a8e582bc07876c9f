/**
 * Text a sender wrote (a subject, a header, a parser's complaint about them), made safe to print on
 * a terminal or in a line-based log: control characters, line breaks and bidi controls written as
 * `\u001b`-style escapes. Their "\n2026-… ERROR …" then cannot read as a line of mailroom's, nor an
 * escape code reach the terminal of whoever reads it, and the escape shows that something was there.
 */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/** `text` with its control characters escaped, but those in `keep` (a stack trace's "\n"). */
export const visible = (text: string, keep = ""): string =>
  text.replace(CONTROLS, (c) => keep.includes(c) ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

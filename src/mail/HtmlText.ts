/**
 * A mail's text where it comes from its HTML: HTML alone, or HTML beside text parts. Either way it
 * is what a reader sees (HiddenHtml), converted by mailparser, whose bounds on size and nesting
 * come first.
 */
import { compile } from "html-to-text"
import { blank } from "./Forwarded.js"
import { visibleHtml } from "./HiddenHtml.js"
import type { ReadMail } from "./ReadMail.js"
import { MAX_HTML_TO_TEXT, readWhole } from "./ReadMail.js"

/** HTML and no text (or a blank text part): mailparser converts HTML to text only when the whole mail is one HTML part. */
export const wantsHtmlText = (mail: ReadMail): mail is ReadMail & { readonly html: string } =>
  blank(mail.text) && typeof mail.html === "string" && !blank(mail.html)

/** A mail that is one HTML part: its text is mailparser's conversion of that HTML. */
const isHtmlAlone = (mail: ReadMail): mail is ReadMail & { readonly html: string } =>
  typeof mail.html === "string" &&
  /^content-type:\s*text\/html\b/i.test(mail.headerLines.find((line) => line.key === "content-type")?.line ?? "")

const HTML_ALONE = Buffer.from("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")

/** mailparser's own conversion, with its limits on size and nesting, of HTML handed to it as a mail of its own. */
const viaMailparser = (html: string): Promise<string> =>
  readWhole(Buffer.concat([HTML_ALONE, Buffer.from(html, "utf8")])).then((alone) => alone.text || "", () => "")

/** mailparser converts HTML nested no deeper than this, with html-to-text told the same depth. */
const MAX_NESTING = 1000

/**
 * The same conversion compiled once: html-to-text compiles its options on every call mailparser
 * makes, about 0.3 ms, and a mail of its own costs as much again (docs/performance.md). Compiled at
 * the first HTML mail, not at start: a command that reads no mail does not pay for it.
 */
let compiled: ((html: string) => string) | undefined
const converted = (html: string) => (compiled ??= compile({ limits: { maxDepth: MAX_NESTING } }))(html)

/**
 * HTML that mailparser's bounds cannot refuse, and that its reading as a mail leaves as it is (UTF-8
 * both ways; its line breaks are already LF, as in every HTML mailparser gave): no longer than its
 * limit, and with no more start tags than the depth it allows, so nested no deeper. Every `<` that
 * is not `</` or `<!` is counted as one, which can only count too many.
 */
export const convertsDirectly = (html: string) => {
  if (html.length > MAX_HTML_TO_TEXT || html.includes("\r") || !html.isWellFormed()) return false
  let starts = 0
  for (let at = html.indexOf("<"); at >= 0; at = html.indexOf("<", at + 1)) {
    const next = html.charCodeAt(at + 1)
    if (next !== 0x2f && next !== 0x21 && ++starts > MAX_NESTING) return false
  }
  return true
}

/** mailparser's conversion of `html`, as if handed to it as a mail of its own (the test holds the two equal). */
export const htmlAsText = (html: string): Promise<string> => {
  if (!convertsDirectly(html)) return viaMailparser(html)
  try {
    return Promise.resolve(converted(html))
  } catch {
    return Promise.resolve("")
  }
}

/** Reading what is hidden must never be the reason a mail is quarantined: on any surprise, the whole HTML's text stands. */
const visibleOrWhole = (html: string): string | undefined => {
  try {
    return visibleHtml(html)
  } catch {
    return undefined
  }
}

/** The text of what an HTML part shows its reader, as mailparser converts it (within mailparser's bounds). */
export const shownText = (html: string): Promise<string> => htmlAsText(visibleOrWhole(html) ?? html)

/**
 * HTML alone inside a multipart (an alternative without its text part, HTML with inline images, a web
 * form's HTML with an attachment) gave no text at all: the ticket's message and the agent saw only the
 * subject. Its text is now the HTML's. Whenever a mail's text comes from its HTML, what the HTML hides
 * from a reader (HiddenHtml.ts) is left out; only once the whole HTML converted, so that its size and
 * depth are known to be within mailparser's bounds.
 */
export const withHtmlText = (read: (source: Buffer) => Promise<ReadMail>) => async (source: Buffer): Promise<ReadMail> => {
  const mail = await read(source)
  const fromHtml = wantsHtmlText(mail) ? await htmlAsText(mail.html) : isHtmlAlone(mail) ? mail.text || "" : ""
  if (fromHtml === "") return withoutHiddenBeside(mail)
  if (typeof mail.html !== "string") return mail
  const visible = visibleOrWhole(mail.html)
  const text = visible === undefined ? fromHtml : await htmlAsText(visible)
  return text === mail.text ? mail : { ...mail, text }
}

/**
 * An HTML part beside text parts: its share of mailparser's text is its conversion, found in the text
 * and replaced by the conversion of what a reader sees. mailparser has converted each such part, so
 * each is within its bounds of size and depth.
 */
const withoutHiddenBeside = async (mail: ReadMail): Promise<ReadMail> => {
  if (mail.htmlBesideText === undefined || typeof mail.text !== "string") return mail
  let text = mail.text
  let from = 0
  for (const html of mail.htmlBesideText) {
    const visible = visibleOrWhole(html)
    if (visible === undefined) continue
    const [whole, shown] = await Promise.all([htmlAsText(html), htmlAsText(visible)])
    // The parts' texts follow each other in order, so each is looked for after the one before.
    const at = whole === "" ? -1 : text.indexOf(whole, from)
    if (at < 0) continue
    text = text.slice(0, at) + shown + text.slice(at + whole.length)
    from = at + shown.length
  }
  return text === mail.text ? mail : { ...mail, text }
}

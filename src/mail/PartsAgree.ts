import { Effect } from "effect"
import type { ParsedEmail } from "./Email.js"
import { shownText } from "./HtmlText.js"
import { eventLimits } from "./ParseMail.js"

/**
 * Whether a mail's plain-text part says what its HTML shows. A mail client writes the text part from
 * the HTML the person typed, so the two hold the same words; a sender who writes them apart can give
 * the model (which reads the text part) instructions that a person reading the HTML never sees.
 */

/** Words of three letters or more; in scripts written without spaces, each character (a line break may fall anywhere). */
const unspaced = String.raw`[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Script=Thai}]`
const tokens = new RegExp(String.raw`${unspaced}|(?:(?!${unspaced})[\p{L}\p{M}]){3,}`, "gu")

const wordsOf = (text: string): Set<string> => new Set(text.toLowerCase().match(tokens) ?? [])

/** The fewest words, and the least share of the text part's, that make the parts disagree: a client's own differences are a few. */
const AT_LEAST = 8
const SHARE = 0.1

/**
 * The text part's words that the HTML's shown text does not hold, when there are enough of them to
 * say the parts were written apart; else none. `shown` is the text of what the HTML shows
 * (HtmlText.shownText), which writes link targets and image titles out as a client's text part does.
 */
export const unshownWords = (text: string, shown: string): ReadonlyArray<string> => {
  const inText = wordsOf(text)
  const inHtml = wordsOf(shown)
  const missing = [...inText].filter((word) => !inHtml.has(word))
  return missing.length >= AT_LEAST && missing.length >= inText.size * SHARE ? missing : []
}

/** Both parts are there but one was cut to keep the event deliverable: what the model reads cannot be checked against the HTML. */
export const partsUncheckable = (email: Pick<ParsedEmail, "html" | "truncated">): boolean =>
  email.html !== null && (email.truncated.includes("html") || email.truncated.includes("text"))

/**
 * What the HTML of a mail shows, with the text part's words it does not show, when the two parts
 * were written apart; undefined when they agree or cannot be compared (no HTML, partsUncheckable).
 * HTML that shows nothing (an image alone, or HTML past mailparser's bounds of size and nesting,
 * which it does not convert) shows none of the text part's words: a sender cannot hide a text part
 * behind HTML too large or too deep to read.
 */
export const partsApart = (
  email: Pick<ParsedEmail, "text" | "html" | "truncated">
): Effect.Effect<{ readonly shown: string; readonly unshown: ReadonlyArray<string> } | undefined> => {
  const html = email.html
  if (html === null || partsUncheckable(email)) return Effect.succeed(undefined)
  return Effect.map(Effect.promise(() => shownText(html)), (shown) => {
    const unshown = unshownWords(email.text, shown)
    return unshown.length === 0 ? undefined : { shown, unshown }
  })
}

/** A UTF-8 character takes at most four bytes: a part this close to its event limit may have been cut there. */
const mayBeCut = (part: string, limit: number) => part.length * 3 > limit - 4 && Buffer.byteLength(part, "utf8") > limit - 4

/**
 * What the model may read of a mail read back from `messages` (an earlier mail of a thread): its text
 * part, unless that was written apart from its HTML, or a part may have been cut at intake (the row
 * does not say; a part at its event limit is taken as cut) so that the two cannot be compared. Then
 * it is what the HTML shows: what a reader saw, whatever the text part says.
 */
export const storedReadable = (stored: { readonly text: string; readonly html: string | null }): Effect.Effect<string> => {
  const html = stored.html
  if (html === null) return Effect.succeed(stored.text)
  if (mayBeCut(stored.text, eventLimits.textBytes) || mayBeCut(html, eventLimits.htmlBytes)) return Effect.promise(() => shownText(html))
  return Effect.map(partsApart({ text: stored.text, html, truncated: [] }), (apart) => apart?.shown ?? stored.text)
}

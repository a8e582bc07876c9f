/**
 * How the answer checks read an answer: sentence by sentence, in any of the languages they know
 * (English, German, French, Spanish, Italian, Dutch, Portuguese), whose letters \b does not know.
 */

/** An answer's sentences: a promise and its figure (or a request and its secret) are written in the same one. */
export const sentencesOf = (text: string) => text.split(/(?<=[.!?])\s+|\n+/)

/** Not preceded by a letter or digit: the start of a word in any script (with the `u` flag). */
export const START = String.raw`(?<![\p{L}\p{N}])`

/** Not followed by a letter or digit. */
export const END = String.raw`(?![\p{L}\p{N}])`

/** Any of `alternatives`, one per language, as whole words, case-insensitively. */
export const anyWord = (alternatives: ReadonlyArray<string>, flags = "iu") =>
  new RegExp(`${START}(?:${alternatives.join("|")})${END}`, flags)

/**
 * A "not" in a claim's clause makes it a warning ("if it asks for your password, it is not from
 * us"); a "whether" or an "if" makes it a question ("the team will check whether it is from us").
 * Italian's and Portuguese "se" and Dutch "of" are left out: each is also a common word that would
 * excuse a real claim.
 */
export const unclaimed = anyWord([
  String.raw`not|never|no|cannot|whether|if|unless|\p{L}+n't`,
  String.raw`nicht|nie|niemals|kein\p{L}*|ob|falls|wenn`,
  String.raw`ne|pas|jamais|si`,
  String.raw`no|nunca|jamás|si`,
  String.raw`non|mai`,
  String.raw`niet|nooit|geen`,
  String.raw`não|nunca`
])

const SEPARATORS = /[,;:—]/g

/** Where the clause of `sentence` that holds position `at` starts and ends: at the commas, semicolons, colons or dashes around it. */
export const clauseAround = (sentence: string, at: number): { readonly start: number; readonly end: number } => {
  let start = 0
  for (const match of sentence.matchAll(SEPARATORS)) {
    if (match.index >= at) return { start, end: match.index }
    start = match.index + 1
  }
  return { start, end: sentence.length }
}

/** The clause of `sentence` that ends at `end`, from its start up to there: where a claim's "not" or "if" stands. */
export const clauseUpTo = (sentence: string, end: number): string => sentence.slice(clauseAround(sentence, end - 1).start, end)

const normalised = (text: string) => text.toLowerCase().replace(/\s+/g, " ").replace(/[.!?\s]+$/, "").trim()

/** The first of `sentences` that the help passages do not hold word for word: what the company wrote itself may be said. */
export const firstNotHeld = (sentences: ReadonlyArray<string>, material: ReadonlyArray<string>): string | undefined => {
  if (sentences.length === 0) return undefined
  const passages = normalised(material.join("\n"))
  return sentences.find((sentence) => !passages.includes(normalised(sentence)))
}

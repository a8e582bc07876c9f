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

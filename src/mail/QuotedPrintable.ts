/**
 * Quoted-printable decoded straight from the bytes, to the very bytes `libqp.decode` gives for the
 * same body read as a binary string. libqp turns the body into a string, runs two regular
 * expressions over it and then decodes it a character at a time: on small mail that was about 50 µs
 * a mail, the costliest step of the fast path (docs/performance.md). The unit test
 * `quotedPrintable.test.ts` holds the two to the same output over hand-written, generated and
 * random input.
 *
 * libqp's three steps, each kept here as it is there:
 * 1. spaces and tabs at the end of a line (before CR, LF or the end) are dropped;
 * 2. soft line breaks, "=" before LF, CRLF or the end, are dropped, in one left-to-right pass;
 * 3. "=" and two hex digits is that byte; any other "=" stays as it is.
 */

const SPACE = 0x20
const TAB = 0x09
const CR = 0x0d
const LF = 0x0a
const EQUALS = 0x3d

const isBlank = (byte: number | undefined) => byte === SPACE || byte === TAB

const hexValue = (byte: number): number =>
  byte >= 0x30 && byte <= 0x39 ? byte - 0x30
  : byte >= 0x41 && byte <= 0x46 ? byte - 0x41 + 10
  : byte >= 0x61 && byte <= 0x66 ? byte - 0x61 + 10
  : -1

/**
 * Steps 1 and 2, a line at a time: each line is copied without its trailing blanks, and its line
 * break is dropped with the line's last "=" where that makes a soft break. Returns the length written.
 */
const unwrap = (input: Buffer, out: Buffer): number => {
  const length = input.length
  let size = 0
  let start = 0
  let nextCr = input.indexOf(CR)
  let nextLf = input.indexOf(LF)
  for (;;) {
    if (nextCr >= 0 && nextCr < start) nextCr = input.indexOf(CR, start)
    if (nextLf >= 0 && nextLf < start) nextLf = input.indexOf(LF, start)
    const lineBreak = nextCr < 0 ? nextLf : nextLf < 0 ? nextCr : Math.min(nextCr, nextLf)
    const stop = lineBreak < 0 ? length : lineBreak
    let end = stop
    while (end > start && isBlank(input[end - 1])) end--
    if (end > start) size += input.copy(out, size, start, end)
    const soft = end > start && input[end - 1] === EQUALS
    if (lineBreak < 0) return soft ? size - 1 : size
    if (input[lineBreak] === LF) {
      if (soft) size--
      else out[size++] = LF
      start = lineBreak + 1
      continue
    }
    // A CR: step 1 has dropped any blanks after it that come before an LF, so step 2 sees CRLF there.
    let after = lineBreak + 1
    while (after < length && isBlank(input[after])) after++
    if (after < length && input[after] === LF) {
      if (soft) size--
      else {
        out[size++] = CR
        out[size++] = LF
      }
      start = after + 1
    } else {
      out[size++] = CR
      start = lineBreak + 1
    }
  }
}

export const decodeQuotedPrintable = (body: Uint8Array): Buffer => {
  const input = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const bytes = Buffer.allocUnsafe(input.length)
  const length = unwrap(input, bytes)
  const text = bytes.subarray(0, length)
  // Step 3, in place (the output never runs ahead of the input), a run between escapes at a time.
  let size = 0
  let read = 0
  for (let at = text.indexOf(EQUALS); at >= 0 && at < length - 2; at = text.indexOf(EQUALS, read)) {
    const high = hexValue(text[at + 1]!)
    const low = hexValue(text[at + 2]!)
    const escape = high >= 0 && low >= 0
    const copied = escape ? at : at + 1
    if (size !== read) text.copyWithin(size, read, copied)
    size += copied - read
    if (escape) text[size++] = high * 16 + low
    read = escape ? at + 3 : at + 1
  }
  if (size !== read) text.copyWithin(size, read, length)
  return text.subarray(0, size + length - read)
}

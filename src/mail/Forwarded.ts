/**
 * A mail whose only words are in a mail it carries as an attachment (message/rfc822: Outlook's
 * "Forward as attachment", a colleague passing a customer's mail on to support) had no text: the
 * ticket and the agent saw a subject and an attachment. Its text becomes the forwarded mail's, under
 * the lines an inline forward carries. Depth one: a forward inside the forward stays an attachment.
 */

/** The most of a forwarded mail kept to read its words; a larger one stays an attachment only. */
export const FORWARDED_BYTES = 1024 * 1024

/** What the reader needs of a read mail: its text, and the bytes of the first forwarded mail it carries. */
export interface WithForward {
  readonly text: string | false | undefined
  readonly html: string | false | undefined
  readonly attachments: ReadonlyArray<{ readonly forwarded?: Buffer }>
}

/** A forwarded mail's header lines and words, as the caller's parser reads them. */
export interface ForwardedWords {
  readonly from: string
  readonly date: string
  readonly subject: string
  readonly text: string
}

/** No text at all, or only white space. */
export const blank = (value: string | false | undefined): boolean => !value || value.trim() === ""

export const withForwardedText = <M extends WithForward>(
  read: (source: Buffer) => Promise<M>,
  readForwarded: (source: Buffer) => Promise<ForwardedWords>
) =>
async (source: Buffer): Promise<M> => {
  const mail = await read(source)
  if (!blank(mail.text) || !blank(mail.html)) return mail
  const bytes = mail.attachments.find((attachment) => attachment.forwarded !== undefined)?.forwarded
  if (bytes === undefined) return mail
  const inner = await readForwarded(bytes).catch(() => undefined)
  if (inner === undefined || inner.text.trim() === "") return mail
  const text = [
    "---------- Forwarded message ---------",
    ...(inner.from ? [`From: ${inner.from}`] : []),
    ...(inner.date ? [`Date: ${inner.date}`] : []),
    ...(inner.subject ? [`Subject: ${inner.subject}`] : []),
    "",
    inner.text
  ].join("\n")
  return { ...mail, text }
}

/** Collects a message/rfc822 attachment's bytes while it is drained, up to FORWARDED_BYTES. */
export const forwardedCollector = () => {
  const chunks: Array<Buffer> = []
  let size = 0
  return {
    add: (chunk: Buffer) => {
      size += chunk.length
      if (size <= FORWARDED_BYTES) chunks.push(chunk)
    },
    bytes: (): Buffer | undefined => (size > 0 && size <= FORWARDED_BYTES ? Buffer.concat(chunks) : undefined)
  }
}

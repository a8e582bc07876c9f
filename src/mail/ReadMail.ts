/**
 * mailparser's reading of a whole mail, and what ParseMail needs of it: headers, text and HTML, each
 * attachment's size and hash (never its bytes, but a forwarded mail's), and the HTML parts whose
 * text mailparser joined into the text.
 */
import { MailParser } from "mailparser"
import type { AddressObject, AttachmentStream, HeaderLines, MailParserOptions } from "mailparser"
import { forwardedCollector } from "./Forwarded.js"

export interface ReadAttachment {
  readonly filename?: string
  readonly contentType: string
  readonly size: number
  readonly checksum: string
  /** A forwarded mail's bytes (message/rfc822, the first one, up to FORWARDED_BYTES): never on the event. */
  readonly forwarded?: Buffer
}

/** What reading a mail leaves (mailparser, or SimpleMail's fast path): headers, text, and each attachment's size and hash. */
export interface ReadMail {
  readonly headerLines: HeaderLines
  readonly from: AddressObject | undefined
  readonly to: AddressObject | Array<AddressObject> | undefined
  readonly cc: AddressObject | Array<AddressObject> | undefined
  readonly replyTo: AddressObject | undefined
  readonly subject: string | undefined
  readonly messageId: string | undefined
  readonly inReplyTo: string | undefined
  readonly references: string | Array<string> | undefined
  readonly text: string | false | undefined
  readonly html: string | false | undefined
  readonly attachments: ReadonlyArray<ReadAttachment>
  /** HTML parts whose conversion mailparser joined into `text` beside text parts (htmlBesideText). */
  readonly htmlBesideText?: ReadonlyArray<string>
}

/** A part of mailparser's MIME tree as its getTextContent walks it. Internal to mailparser: parseMail.test.ts pins it. */
interface MimeNode {
  readonly contentType?: string
  readonly textContent?: string
  readonly children?: ReadonlyArray<MimeNode>
}

/**
 * The HTML parts below the root and outside any multipart/alternative: mailparser converts each
 * into the text, between the text parts around it (an HTML part beside a text part, a footer a list
 * server appends). Not when it could not convert one: its text stays empty then, as it does here.
 */
const htmlBesideText = (root: MimeNode | undefined): Array<string> => {
  const found: Array<string> = []
  const walk = (node: MimeNode, alternative: boolean) => {
    for (const child of node.children ?? []) {
      if (!alternative && child.contentType === "text/html" && typeof child.textContent === "string") found.push(child.textContent)
      walk(child, alternative || child.contentType === "multipart/alternative")
    }
  }
  if (root !== undefined) walk(root, root.contentType === "multipart/alternative")
  return found
}

/** HTML longer than this (in UTF-16 units) is not converted to text: its text stays empty. */
export const MAX_HTML_TO_TEXT = 2_000_000

const options: MailParserOptions = {
  checksumAlgo: "sha256",
  skipImageLinks: true,
  skipTextToHtml: true,
  skipTextLinks: true,
  maxHtmlLengthToParse: MAX_HTML_TO_TEXT
}

/**
 * mailparser's streaming parser, with each attachment drained as it is decoded: mailparser hashes
 * and counts it on the way (checksumAlgo), so the decoded bytes are never held in memory at once.
 */
export const readWhole = (source: Buffer): Promise<ReadMail> =>
  new Promise((resolve, reject) => {
    const parser = new MailParser(options)
    const attachments: Array<ReadAttachment> = []
    let forwardedSeen = false
    const drain = (attachment: AttachmentStream) => {
      const forwarded = attachment.contentType === "message/rfc822" && !forwardedSeen ? forwardedCollector() : undefined
      if (forwarded) {
        forwardedSeen = true
        attachment.content.on("data", forwarded.add)
      }
      attachment.content.on("end", () => {
        const bytes = forwarded?.bytes()
        attachments.push({
          ...(attachment.filename === undefined ? {} : { filename: attachment.filename }),
          contentType: attachment.contentType,
          size: attachment.size ?? 0,
          checksum: attachment.checksum ?? "",
          ...(bytes === undefined ? {} : { forwarded: bytes })
        })
        attachment.release?.()
      })
      attachment.content.resume()
    }
    let converted = true
    parser.on("data", (data: AttachmentStream | { readonly type: "text"; readonly textConversionError?: unknown }) => {
      if (data.type === "attachment") drain(data)
      else if (data.textConversionError !== undefined) converted = false
    })
    parser.once("error", reject)
    parser.once("end", () => {
      // Only a mail with HTML and text can have HTML beside its text.
      const beside = converted && parser.html && parser.text ? htmlBesideText((parser as unknown as { readonly tree?: MimeNode }).tree) : []
      resolve({
        headerLines: parser.headerLines || [],
        from: parser.from,
        to: parser.to,
        cc: parser.cc,
        replyTo: parser.replyTo,
        subject: parser.subject,
        messageId: parser.messageId,
        inReplyTo: parser.inReplyTo,
        references: parser.references,
        text: parser.text,
        html: parser.html,
        attachments,
        ...(beside.length > 0 ? { htmlBesideText: beside } : {})
      })
    })
    parser.end(source)
  })

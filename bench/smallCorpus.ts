/**
 * Small real-world support mail for the bench: 2–10 KB each, with what a Gmail mailbox really holds
 * above the body (Received lines, DKIM-Signature, Authentication-Results, Message-ID), threads with
 * In-Reply-To/References and quoted replies, signatures, plain text or text and HTML, some non-ASCII
 * names and subjects and a few small attachments. The same n and seed give the same bytes.
 */
import { mail, mulberry32, pseudoRandomBytes } from "../test/support/mails.js"
import type { MailAttachment } from "../test/support/mails.js"

export const SMALL_MIN_BYTES = 2 * 1024
export const SMALL_MAX_BYTES = 10 * 1024

export interface SmallMail {
  readonly index: number
  readonly raw: Buffer
  readonly messageId: string
  readonly from: string
  /** The Message-ID this mail answers, always an earlier one of the corpus. */
  readonly threadOf?: string
  readonly html: boolean
  readonly attachment: boolean
  /** Carries mx.google.com's dkim, spf and dmarc pass for its From. */
  readonly authenticated: boolean
}

export interface SmallCorpusOptions {
  readonly seed?: number
  /** The mailbox the mail is sent to. */
  readonly to?: string
  /**
   * Every mail answerable by an agent: a sender of its own, mx.google.com's pass for it, no thread,
   * a question the knowledge folder covers.
   */
  readonly answerable?: boolean
}

type Random = () => number

const int = (random: Random, below: number) => Math.floor(random() * below)
const pick = <A>(random: Random, list: ReadonlyArray<A>): A => list[int(random, list.length)]!

const names = [
  "Ada Lovelace", "Grace Hopper", "Alan Turing", "Margaret Hamilton", "Linus Berg", "Priya Natarajan",
  "Tom Becker", "Sarah O'Neill", "Kenji Watanabe", "Fatima Haddad", "Lucas Martin", "Emma Johansson",
  "José Álvarez", "Zoë Müller", "Łukasz Wójcik", "Søren Højgaard", "François Lefèvre", "Ольга Петрова",
  "山田 太郎", "Nguyễn Thị Lan", "Çağrı Yılmaz", "Renée Dubois", "Mikael Ström", "Ana Conceição"
]

const domains = [
  "acme-corp.example", "globex.example", "initech.example", "umbrella-labs.example", "hooli.example",
  "stark-industries.example", "wayne-enterprises.example", "cyberdyne.example", "mail.soylent.example", "tyrell.example"
]

const subjects = [
  "Can't log in to my account",
  "Password reset link not working",
  "Invoice #{n} is wrong",
  "Question about my invoice",
  "Refund for order {n}",
  "Change the billing address",
  "Two-factor code does not work",
  "How do I change my email address?",
  "Export to CSV fails",
  "API rate limit exceeded",
  "Webhook retries",
  "Upgrade to the annual plan",
  "Réclamation : facture incorrecte",
  "Problème de connexion",
  "Проблема со входом",
  "ログインできません",
  "Rechnung #{n} – falscher Betrag",
  "Cancel my subscription 😞",
  "Dashboard is very slow today",
  "SSO with Okta"
]

// Questions the knowledge folder answers (account.md, billing.md), for the reply scenario.
const answerableSubjects = [
  "I forgot my password",
  "Password reset link not working",
  "Where do I find my invoices?",
  "Change the billing address and VAT number",
  "How do I get a refund?",
  "Two-factor authentication code does not work",
  "Change the email address of my account"
]

const sentences = [
  "I have been trying to sign in since this morning and the page keeps telling me my password is wrong.",
  "I requested a password reset twice but the link in the email says it has expired.",
  "Our last invoice shows the wrong VAT number and our accountant needs a corrected copy.",
  "We were charged twice for the same month, could you please refund one of the payments?",
  "The export to CSV stops at about 10,000 rows and the file is cut off in the middle of a line.",
  "Since yesterday the dashboard takes more than a minute to load for everyone on our team.",
  "Our webhook endpoint returned a 500 for an hour and we would like to know whether the events are retried.",
  "Could you tell me how to move our workspace to the annual plan without losing the discount?",
  "The two-factor codes from the app are rejected even though the phone clock is set automatically.",
  "We are getting HTTP 429 from the API although we send far fewer requests than the documented limit.",
  "I would like to change the email address of my account to my new work address.",
  "Single sign-on with Okta worked until Friday; now every login ends on an error page.",
  "Please find the details below, and let me know if you need anything else from our side.",
  "This is quite urgent for us because the end of the quarter is on Friday.",
  "I attached a screenshot of the error message in case it helps.",
  "Thanks in advance for looking into it.",
  "Nous n'arrivons plus à télécharger nos factures depuis la mise à jour.",
  "Wir können die Rechnung für März nicht finden, bitte schicken Sie sie uns erneut.",
  "Не могу войти в аккаунт после смены пароля.",
  "請幫我確認一下帳單地址是否已經更新。"
]

const greetings = ["Hello support,", "Hi there,", "Hi team,", "Good morning,", "Dear support team,", "Bonjour,", "Hallo,"]
const closings = ["Thanks,", "Best regards,", "Kind regards,", "Cheers,", "Many thanks,", "Cordialement,", "Viele Grüße,"]
const titles = ["Head of Operations", "Finance Manager", "CTO", "Office Manager", "Software Engineer", "Accounts Payable"]

const disclaimer =
  "CONFIDENTIALITY NOTICE: This email and any attachments are for the exclusive and confidential use of\n" +
  "the intended recipient. If you are not the intended recipient, please do not read, distribute or take\n" +
  "action in reliance upon this message. If you have received this in error, please notify us immediately\n" +
  "by return email and promptly delete this message and its attachments from your computer system."

const base64Of = (random: Random, bytes: number) => pseudoRandomBytes(bytes, int(random, 2 ** 31)).toString("base64")

const fold = (value: string, width = 72) => (value.match(new RegExp(`.{1,${width}}`, "g")) ?? [""]).join("\r\n\t")

const ip = (random: Random) => `${int(random, 200) + 20}.${int(random, 256)}.${int(random, 256)}.${int(random, 254) + 1}`

const stampOf = (date: Date) => date.toUTCString().replace(/GMT$/, "+0000 (UTC)")

interface Sender {
  readonly name: string
  readonly address: string
  readonly domain: string
}

const senderOf = (who: number): Sender => {
  const name = names[who % names.length]!
  const domain = domains[Math.floor(who / names.length) % domains.length]!
  const local = `${name.normalize("NFD").replace(/[^A-Za-z ]/g, "").trim().toLowerCase().replace(/\s+/g, ".") || "customer"}${who}`
  return { name, address: `${local}@${domain}`, domain }
}

/** What the issue asks of an answerable mail: mx.google.com's pass for dkim, spf and dmarc. */
export const trustedPass = (address: string, domain: string) =>
  `Authentication-Results: mx.google.com;\r\n       dkim=pass header.i=@${domain} header.s=s2026 header.b=Kx3fQ9Zt;\r\n` +
  `       spf=pass (google.com: domain of ${address} designates 209.85.220.41 as permitted sender) smtp.mailfrom=${address};\r\n` +
  `       dmarc=pass (p=QUARANTINE sp=QUARANTINE dis=NONE) header.from=${domain}`

const failingAuth = (random: Random, address: string, domain: string) =>
  pick(random, [
    `Authentication-Results: mx.google.com;\r\n       spf=softfail (google.com: domain of transitioning ${address} does not designate ${
      ip(random)
    } as permitted sender) smtp.mailfrom=${address};\r\n       dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=${domain}`,
    `Authentication-Results: mx.google.com;\r\n       spf=neutral (google.com: ${ip(random)} is neither permitted nor denied by best guess record for domain of ${address}) smtp.mailfrom=${address}`
  ])

const traceHeaders = (random: Random, sender: Sender, date: Date, to: string, authenticated: boolean): Array<string> => {
  const host = `mail-${pick(random, ["wr1", "ej1", "pl1", "qt1", "io1"])}-f${int(random, 200)}.${sender.domain}`
  const smtpId = `${Math.floor(random() * 2 ** 48).toString(36)}.${int(random, 1000)}.2026`
  const received = [
    `Received: by 2002:a05:6a10:${int(random, 0xffff).toString(16)} with SMTP id ${smtpId};\r\n        ${stampOf(date)}`,
    `Received: from ${host} (${host}. [${ip(random)}])\r\n        by mx.google.com with SMTPS id ${smtpId}\r\n        for <${to}>\r\n        (Google Transport Security);\r\n        ${
      stampOf(date)
    }`,
    ...(random() < 0.5
      ? [`Received: from [192.168.${int(random, 256)}.${int(random, 254) + 1}] (unknown [${ip(random)}])\r\n        by ${host} (Postfix) with ESMTPSA id ${
        Math.floor(random() * 2 ** 40).toString(16).toUpperCase()
      }\r\n        for <${to}>; ${stampOf(date)}`]
      : [])
  ]
  const dkim = `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n        d=${sender.domain}; s=s2026; t=${
    Math.floor(date.getTime() / 1000)
  };\r\n        h=to:subject:message-id:date:from:mime-version:from:to:cc:subject\r\n         :date:message-id:reply-to;\r\n        bh=${
    base64Of(random, 32)
  };\r\n        b=${fold(base64Of(random, 256), 64).replace(/\r\n\t/g, "\r\n         ")}`
  return [
    `Delivered-To: ${to}`,
    received[0]!,
    `X-Received: by 2002:a17:90b:${int(random, 0xffff).toString(16)} with SMTP id ${smtpId}.${int(random, 100)};\r\n        ${stampOf(date)}`,
    `ARC-Seal: i=1; a=rsa-sha256; t=${Math.floor(date.getTime() / 1000)}; cv=none;\r\n        d=google.com; s=arc-20240605;\r\n        b=${
      fold(base64Of(random, 128), 64).replace(/\r\n\t/g, "\r\n         ")
    }`,
    `Return-Path: <${sender.address}>`,
    ...received.slice(1),
    `Received-SPF: ${authenticated ? "pass" : "softfail"} (google.com: domain of ${sender.address}) client-ip=${ip(random)};`,
    authenticated ? trustedPass(sender.address, sender.domain) : failingAuth(random, sender.address, sender.domain),
    dkim
  ]
}

const signatureOf = (random: Random, sender: Sender) => {
  const lines = ["-- ", sender.name, `${pick(random, titles)}, ${sender.domain.replace(/\.example$/, "").replace(/^mail\./, "")}`]
  if (random() < 0.6) lines.push(`+1 (${200 + int(random, 700)}) ${100 + int(random, 900)}-${1000 + int(random, 9000)}`)
  if (random() < 0.3) lines.push("", disclaimer)
  return lines.join("\n")
}

const escapeHtml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

const htmlOf = (paragraphs: ReadonlyArray<string>, quoted: string | undefined, signature: string) =>
  `<div dir="ltr">${paragraphs.map((p) => `<div>${escapeHtml(p)}</div><div><br></div>`).join("")}` +
  `<div><br></div><span class="gmail_signature_prefix">-- </span><br><div dir="ltr" class="gmail_signature">${
    escapeHtml(signature.replace(/^-- \n/, "")).replace(/\n/g, "<br>")
  }</div></div>` +
  (quoted === undefined
    ? ""
    : `<br><div class="gmail_quote"><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">${
      escapeHtml(quoted).replace(/\n/g, "<br>")
    }</blockquote></div>`)

const attachmentOf = (random: Random, index: number): MailAttachment =>
  pick(random, [
    { filename: `screenshot-${index}.png`, contentType: "image/png", size: 1_500 + int(random, 2_000) },
    { filename: `error-log-${index}.txt`, contentType: "text/plain", size: 800 + int(random, 1_500) },
    { filename: `Rechnung_${index}.pdf`, contentType: "application/pdf", size: 2_000 + int(random, 1_500) }
  ].map(({ filename, contentType, size }) => ({
    filename,
    contentType,
    content: contentType === "text/plain"
      ? Buffer.from(Array.from({ length: Math.ceil(size / 60) }, (_, i) => `2026-11-30T10:${String(i % 60).padStart(2, "0")}:00Z ERROR request failed (status 500)\n`).join("").slice(0, size))
      : pseudoRandomBytes(size, (index * 2654435761) >>> 0)
  })))

interface Earlier {
  readonly messageId: string
  readonly references: ReadonlyArray<string>
  readonly subject: string
  readonly sender: Sender
  readonly text: string
  readonly date: Date
}

const quote = (parent: Earlier) =>
  `On ${parent.date.toUTCString().replace(/ GMT$/, "")}, ${parent.sender.name} <${parent.sender.address}> wrote:\n` +
  parent.text.split("\n").slice(0, 24).map((line) => (line.length > 0 ? `> ${line}` : ">")).join("\n")

/**
 * `n` small mails, made one at a time as the caller iterates. About a third of them answer an earlier
 * one (by the same sender, or by the support team answered back), 45% carry HTML beside the text, 3%
 * a small attachment, 85% mx.google.com's pass for their sender.
 */
export function* generateSmallCorpus(n: number, options: SmallCorpusOptions = {}): Generator<SmallMail> {
  const random = mulberry32(options.seed ?? 20261202)
  const to = options.to ?? "support@example.com"
  const earlier: Array<Earlier> = []
  const start = Date.UTC(2026, 10, 2, 8, 0, 0)
  for (let index = 0; index < n; index++) {
    const date = new Date(start + index * 41_000 + int(random, 30_000))
    const parent = !options.answerable && earlier.length > 0 && random() < 0.33 ? pick(random, earlier) : undefined
    const who = options.answerable ? index : parent && random() < 0.8 ? -1 : int(random, Math.max(1, Math.floor(n / 4)))
    const sender = who === -1 ? parent!.sender : senderOf(who)
    const authenticated = options.answerable === true || random() < 0.85
    const subject = parent
      ? `Re: ${parent.subject.replace(/^Re: /, "")}`
      : pick(random, options.answerable ? answerableSubjects : subjects).replace("{n}", String(10_000 + int(random, 90_000)))
    const paragraphs = [pick(random, greetings)]
    const wanted = 2 + int(random, 6)
    for (let i = 0; i < wanted; i++) paragraphs.push(Array.from({ length: 1 + int(random, 3) }, () => pick(random, sentences)).join(" "))
    paragraphs.push(`${pick(random, closings)}\n${sender.name.split(" ")[0]}`)
    const signature = signatureOf(random, sender)
    const quoted = parent ? quote(parent) : undefined
    const html = random() < 0.45
    const attachments = !options.answerable && random() < 0.03 ? [attachmentOf(random, index)] : []
    const references = parent ? [...parent.references.slice(-8), parent.messageId] : []
    const messageId = `<CA+${Math.floor(random() * 2 ** 48).toString(36)}${index.toString(36)}=${
      Math.floor(random() * 2 ** 40).toString(36)
    }@mail.${sender.domain}>`
    const trace = traceHeaders(random, sender, date, to, authenticated)
    const base64 = random() < 0.1
    const build = (kept: number, withQuote: boolean, withAttachments: boolean) => {
      const body = paragraphs.slice(0, kept)
      const text = `${body.join("\n\n")}\n\n${signature}\n${withQuote && quoted ? `\n${quoted}\n` : ""}`
      return {
        text,
        raw: mail({
          from: `${sender.name} <${sender.address}>`,
          to,
          subject,
          messageId,
          date,
          text,
          trace,
          boundary: `00000000000${(index * 7919).toString(16)}${Math.floor(date.getTime() / 1000).toString(16)}`,
          ...(base64 ? { transferEncoding: "base64" as const } : {}),
          ...(html ? { html: htmlOf(body, withQuote ? quoted : undefined, signature) } : {}),
          ...(parent ? { inReplyTo: parent.messageId, references } : {}),
          ...(withAttachments && attachments.length > 0 ? { attachments } : {})
        })
      }
    }
    let built = build(paragraphs.length, true, true)
    // Too long: fewer paragraphs, then no quote, then no attachment. Too short: the paragraphs again.
    for (let kept = paragraphs.length - 1; built.raw.length > SMALL_MAX_BYTES && kept > 2; kept--) built = build(kept, true, true)
    if (built.raw.length > SMALL_MAX_BYTES) built = build(2, false, true)
    if (built.raw.length > SMALL_MAX_BYTES) built = build(2, false, false)
    while (built.raw.length < SMALL_MIN_BYTES) {
      paragraphs.splice(paragraphs.length - 1, 0, pick(random, sentences))
      built = build(paragraphs.length, true, true)
    }
    earlier.push({ messageId, references, subject, sender, text: built.text, date })
    if (earlier.length > 500) earlier.splice(0, earlier.length - 500)
    yield {
      index,
      raw: built.raw,
      messageId,
      from: sender.address,
      html,
      attachment: attachments.length > 0 && built.raw.includes("Content-Disposition: attachment"),
      authenticated,
      ...(parent ? { threadOf: parent.messageId } : {})
    }
  }
}

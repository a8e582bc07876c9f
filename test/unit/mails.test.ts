import { createHash } from "node:crypto"
import { simpleParser } from "mailparser"
import type { ParsedMail } from "mailparser"
import { describe, expect, it } from "vitest"
import { generateCorpus } from "../support/corpus.js"
import type { CorpusMail } from "../support/corpus.js"
import { encodeText, hostileMails, largeAttachmentMail, mail, pseudoRandomBytes } from "../support/mails.js"

// The options the intake parses with (src/services/ParseMail.ts).
const parse = (raw: Buffer) =>
  simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true, checksumAlgo: "sha256" })

const senders = (parsed: ParsedMail) =>
  (parsed.from?.value ?? []).flatMap((entry) => entry.group ?? [entry]).map((entry) => entry.address ?? "")

const header = (parsed: ParsedMail, key: string) => parsed.headerLines.find((line) => line.key === key)?.line

const lines = (raw: Buffer) => raw.toString("latin1").split("\r\n")

describe("mail()", () => {
  const attachment = pseudoRandomBytes(10_000, 1)
  const options = {
    from: "Zoë Ünïcode <zoe@customer.test>",
    to: "Support <support@example.com>",
    subject: "ログインできません — Réclamation: facture incorrecte 😞 and a long tail of words",
    text: "Line one with a trailing space \nx=y and a tab\t\n" + "long ".repeat(40) + "\n\n— fin",
    html: "<p>Hello <b>support</b> 😞</p>",
    messageId: "<round.trip@customer.test>",
    inReplyTo: "<parent@customer.test>",
    references: ["<root@customer.test>", "<parent@customer.test>"],
    date: new Date("2025-11-13T02:13:20Z"),
    headers: { "X-Mailer": "hand", "Auto-Submitted": "no" },
    attachments: [
      { filename: "résumé \"final\".pdf", contentType: "application/pdf", content: attachment },
      { filename: `${"très long nom de fichier ".repeat(6)}.txt`, contentType: "text/plain", content: Buffer.from("long") },
      { filename: "notes.txt", contentType: "text/plain", content: Buffer.from("plain notes") }
    ]
  }

  it("writes 7-bit ASCII, CRLF only, no line over 78 characters", () => {
    const raw = mail(options)
    expect(raw.every((byte) => byte < 0x80)).toBe(true)
    expect(raw.toString("latin1")).not.toMatch(/\r(?!\n)|(?<!\r)\n/)
    expect(lines(raw).filter((line) => line.length > 78)).toEqual([])
  })

  it("comes back from mailparser as it went in", async () => {
    const parsed = await parse(mail(options))
    expect(parsed.from?.value).toEqual([{ address: "zoe@customer.test", name: "Zoë Ünïcode" }])
    expect(parsed.subject).toBe(options.subject)
    expect(parsed.text).toBe(options.text)
    expect(parsed.html).toBe(options.html)
    expect(parsed.messageId).toBe(options.messageId)
    expect(parsed.inReplyTo).toBe(options.inReplyTo)
    expect(parsed.references).toEqual(options.references)
    expect(parsed.date).toEqual(options.date)
    expect(parsed.headers.get("x-mailer")).toBe("hand")
    expect(parsed.attachments.map((a) => [a.filename, a.contentType, a.content])).toEqual(
      options.attachments.map((a) => [a.filename, a.contentType, a.content])
    )
  })

  it("leaves out From and Message-ID for null, and keeps a printable subject verbatim", async () => {
    const raw = mail({ from: null, messageId: null, subject: "=?utf-8?B?SGk=?=" })
    expect(raw.toString()).not.toMatch(/^(From|Message-ID):/im)
    const parsed = await parse(raw)
    expect(parsed.from).toBeUndefined()
    expect(parsed.messageId).toBeUndefined()
    expect(parsed.subject).toBe("Hi")
  })

  it("is the same bytes given the same boundary and Message-ID", () => {
    const fixed = { ...options, boundary: "=_fixed" }
    expect(mail(fixed).equals(mail(fixed))).toBe(true)
  })

  const charsets: Array<[string, string]> = [
    ["iso-8859-1", "Réclamation: facture incorrecte, déjà payée"],
    ["windows-1252", "“Hi” – it costs €5"],
    ["koi8-r", "Проблема со входом"],
    ["windows-1251", "Проблема со входом"],
    ["shift_jis", "ログインできません ｶﾀｶﾅ"],
    ["euc-jp", "ログインできません"],
    ["iso-2022-jp", "ログイン\nできません ok"],
    ["gbk", "无法登录"],
    ["big5", "無法登入"],
    ["euc-kr", "로그인할 수 없습니다"]
  ]

  for (const [charset, text] of charsets) {
    it(`encodes ${charset} for real, and mailparser reads it back`, async () => {
      expect(encodeText(text, charset).equals(Buffer.from(text))).toBe(false)
      expect(encodeText(text, charset).includes("?")).toBe(false)
      for (const transferEncoding of ["quoted-printable", "base64"] as const) {
        const parsed = await parse(mail({ charset, transferEncoding, text }))
        expect(parsed.text?.replace(/\n$/, "")).toBe(text)
      }
    })
  }

  it("gives an unknown charset label UTF-8 bytes, which mailparser reads as UTF-8", async () => {
    const raw = mail({ charset: "x-klingon", text: "nuqneH ✓" })
    expect(raw.toString()).toContain("charset=x-klingon")
    expect((await parse(raw)).text).toBe("nuqneH ✓\n")
  })
})

describe("largeAttachmentMail()", () => {
  for (const size of [0, 1, 2, 3, 57, 58, 933_888, 2_000_005]) {
    it(`carries exactly pseudoRandomBytes(${size}) and nothing after the closing boundary`, async () => {
      const raw = largeAttachmentMail(size)
      expect(raw.subarray(-4).toString()).toBe("--\r\n")
      expect(raw.includes(0)).toBe(false)
      const parsed = await parse(raw)
      expect(parsed.attachments).toHaveLength(1)
      expect(parsed.attachments[0]!.filename).toBe("logs.bin")
      expect(parsed.attachments[0]!.content.equals(pseudoRandomBytes(size, size))).toBe(true)
      expect(lines(raw).every((line) => line.length <= 998)).toBe(true)
    })
  }
})

type Check = (parsed: ParsedMail) => void

const textIs = (text: string): Check => (parsed) => expect(parsed.text).toBe(text)

const nothingReadable: Check = (parsed) => {
  expect(parsed.from).toBeUndefined()
  expect(parsed.subject).toBeUndefined()
  expect(parsed.text).toBeUndefined()
}

// What each note claims mailparser does, or the error it rejects with.
const checks: Record<string, Check | RegExp> = {
  "multipart whose boundary never appears": (parsed) => {
    expect(parsed.text).toBeUndefined()
    expect(parsed.html).toBe(false)
    expect(parsed.attachments).toEqual([])
  },
  "multipart that never closes": (parsed) => {
    expect(parsed.text).toBe("Hello world")
    expect(parsed.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([
      ["x.pdf", "%PDF-1.4 a document that goes on and on"]
    ])
  },
  "truncated base64 body": textIs("Hello, my invoice is wrong, pleas"),
  "no headers at all": nothingReadable,
  "nested multipart 999 deep": textIs("deep down"),
  "nested multipart 1000 deep": /^Max allowed child nodes exceeded$/,
  "header line of 100 KB": (parsed) => expect(parsed.subject).toBe("x".repeat(100_000)),
  "2,000 headers": (parsed) => expect(parsed.headerLines).toHaveLength(2003),
  "header block over 1 MB": /^Max header size for a MIME node exceeded$/,
  "empty message": nothingReadable,
  "only headers": (parsed) => {
    expect(parsed.subject).toBe("nothing else")
    expect(parsed.text).toBeUndefined()
  },
  "no From header": (parsed) => {
    expect(parsed.from).toBeUndefined()
    expect(parsed.text).toBe("hello\n")
  },
  "From is an empty group": (parsed) =>
    expect(parsed.from?.value).toEqual([{ name: "undisclosed-recipients", group: [] }]),
  "From is a name without an address": (parsed) =>
    expect(parsed.from?.value).toEqual([{ name: "Customer Service", address: "" }]),
  "no Message-ID": (parsed) => expect(parsed.messageId).toBeUndefined(),
  "garbage Date": (parsed) => {
    expect(Math.abs(parsed.date!.getTime() - Date.now())).toBeLessThan(60_000)
    expect(header(parsed, "date")).toBe("Date: the day after tomorrow")
  },
  "unknown charset in the body": textIs("nuqneH ✓ \ufffd Qapla'\n"),
  "unknown charset in an encoded-word subject": (parsed) => expect(parsed.subject).toBe("Qapla' ✓ \ufffd"),
  "latin1 body, 8bit": textIs("Réclamation: facture incorrecte, déjà payée\n"),
  "windows-1252 body, quoted-printable": textIs("“Hi” – it costs €5\n"),
  "windows-1252 bytes labelled iso-8859-1": textIs("“Hi” €5\n"),
  "koi8-r body, base64": (parsed) => {
    expect(parsed.text).toBe("Проблема со входом")
    expect(parsed.subject).toBe("Проблема со входом")
  },
  "iso-2022-jp body, 7bit": textIs("ログインできません\n"),
  "shift_jis body, 8bit": textIs("ログインできません\n"),
  "NUL bytes and invalid UTF-8 in the body": textIs("before\u0000\ufffd\ufffd\ufffd(\u0000after\n"),
  "encoded-word subject that decodes to a Bcc header": (parsed) =>
    expect(parsed.subject).toBe("Hello\r\nBcc: victim@evil.test"),
  "display name with encoded CR/LF": (parsed) =>
    expect(parsed.from?.value).toEqual([{ name: "Mallory\r\nBcc: victim@evil.test", address: "mallory@evil.test" }]),
  "References and In-Reply-To with CRLF tricks": (parsed) => {
    expect(parsed.references).toEqual(["<a@evil.test>", "<Bcc:>", "<victim@evil.test>", "<b@evil.test>"])
    expect(parsed.inReplyTo).toBe("<x@evil.test>\r\nBcc: victim@evil.test>")
  },
  "HTML with script and onerror": (parsed) =>
    expect(parsed.html).toBe(`<p>Hi</p><script>alert(1)</script><img src=x onerror="alert(2)">`),
  "attachment named ../../etc/passwd with CRLF": (parsed) =>
    expect(parsed.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([
      ["../../etc/passwd\r\nX-Evil: 1", "root:x:0:0"]
    ]),
  "first copy of a Message-ID": (parsed) => expect(parsed.messageId).toMatch(/^<dup\./),
  "second copy of that Message-ID": (parsed) => expect(parsed.messageId).toMatch(/^<dup\./)
}

describe("hostileMails()", () => {
  const hostile = hostileMails()

  it("names each case once, notes it, and gives a reason exactly when quarantined", () => {
    expect(new Set(hostile.map((m) => m.name)).size).toBe(hostile.length)
    expect(hostile.map((m) => m.name).sort()).toEqual(Object.keys(checks).sort())
    for (const m of hostile) {
      expect(m.note.length).toBeGreaterThan(10)
      expect(m.reason !== undefined).toBe(m.expect === "quarantined")
      if (m.reason) expect(["no_sender", "unparseable", "too_large"]).toContain(m.reason)
    }
  })

  it("duplicates only what came before, and a second call duplicates nothing of the first", async () => {
    const ids = await Promise.all(hostile.map(async (m) => (await parse(m.raw).catch(() => undefined))?.messageId))
    const received = ids.filter((id, i) => id !== undefined && hostile[i]!.expect === "received")
    expect(new Set(received).size).toBe(received.length)
    hostile.forEach((m, i) => {
      if (m.expect === "duplicate") expect(received.indexOf(ids[i]!)).toBeLessThan(i)
    })
    const again = new Set(hostileMails().map((m) => m.raw.toString("latin1")))
    expect(hostile.filter((m) => m.expect !== "quarantined" && again.has(m.raw.toString("latin1")))).toEqual([])
  })

  for (const m of hostile) {
    it(`${m.name}: ${m.expect}${m.reason ? ` (${m.reason})` : ""}`, async () => {
      const check = checks[m.name]!
      if (check instanceof RegExp) {
        expect(m.reason).toBe("unparseable")
        await expect(parse(m.raw)).rejects.toThrow(check)
        return
      }
      const parsed = await parse(m.raw)
      const usable = senders(parsed).some((address) => address.includes("@"))
      expect(usable).toBe(m.expect !== "quarantined")
      if (m.reason === "unparseable") expect(m.raw.length).toBe(0)
      check(parsed)
    })
  }
})

const digest = (mails: Iterable<CorpusMail>) => {
  const hash = createHash("sha256")
  for (const m of mails) hash.update(m.raw)
  return hash.digest("hex")
}

const subjects = /^(Re: |Out of office: )?(How do I reset my password\?|API question|Invoice #\d+ is wrong|Réclamation: facture incorrecte|Проблема со входом|ログインできません|Export to CSV fails|Webhook retries|Cancel my subscription 😞)$/

describe("generateCorpus()", () => {
  it("is the same bytes for the same n and seed, and other bytes for another seed", () => {
    expect(digest(generateCorpus(200))).toBe(digest(generateCorpus(200)))
    expect(digest(generateCorpus(200, { seed: 7 }))).toBe(digest(generateCorpus(200, { seed: 7 })))
    expect(digest(generateCorpus(200, { seed: 7 }))).not.toBe(digest(generateCorpus(200)))
  })

  it("has gen_corpus.py's mix and average size at n = 1000", () => {
    const mails = [...generateCorpus(1000)]
    const share = (test: (m: CorpusMail) => boolean) => mails.filter(test).length / mails.length
    expect(share((m) => m.kind === "reply")).toBeCloseTo(0.15, 1)
    expect(share((m) => m.kind === "auto-reply")).toBeGreaterThan(0.015)
    expect(share((m) => m.kind === "auto-reply")).toBeLessThan(0.045)
    expect(share((m) => m.kind === "list")).toBeGreaterThan(0.008)
    expect(share((m) => m.kind === "list")).toBeLessThan(0.035)
    expect(share((m) => m.raw.includes("Content-Type: text/html"))).toBeCloseTo(0.4, 1)
    expect(share((m) => m.raw.includes("Content-Disposition: attachment"))).toBeCloseTo(0.1, 1)
    const average = mails.reduce((sum, m) => sum + m.raw.length, 0) / mails.length
    expect(average).toBeGreaterThan(50_000)
    expect(average).toBeLessThan(80_000)
    expect(Math.max(...mails.map((m) => m.raw.length))).toBeLessThan(2_100_000)
  })

  it("replies only to earlier mail, and a smaller attachment cap changes nothing else", () => {
    const mails = [...generateCorpus(400, { maxAttachmentBytes: 10_000 })]
    const seen = new Set<string>()
    for (const m of mails) {
      if (m.threadOf !== undefined) expect(seen.has(m.threadOf)).toBe(true)
      seen.add(m.messageId)
    }
    expect(new Set(mails.map((m) => m.kind))).toEqual(new Set(["plain", "html", "attachment", "reply", "auto-reply", "list"]))
    const uncapped = [...generateCorpus(400)]
    expect(uncapped.map((m) => [m.messageId, m.kind, m.threadOf])).toEqual(mails.map((m) => [m.messageId, m.kind, m.threadOf]))
  })

  it("parses, every mail, into what its kind says", async () => {
    const languages = new Set<string>()
    for (const m of generateCorpus(200, { maxAttachmentBytes: 50_000 })) {
      const parsed = await parse(m.raw)
      expect(parsed.messageId).toBe(m.messageId)
      expect(senders(parsed)[0]).toMatch(/^customer\d+@example\.org$/)
      expect(parsed.subject).toMatch(subjects)
      expect(parsed.text).toMatch(/^Hello support,\n\n[a-z ]+\n\nThanks,\nCustomer \d+\n*$/)
      expect(parsed.inReplyTo).toBe(m.threadOf)
      expect(parsed.references).toBe(m.threadOf)
      expect(parsed.headers.get("auto-submitted")).toBe(m.kind === "auto-reply" ? "auto-replied" : undefined)
      expect(header(parsed, "list-id")).toBe(m.kind === "list" ? "List-Id: <news.example.net>" : undefined)
      expect(parsed.headers.get("precedence")).toBe(m.kind === "list" ? "list" : undefined)
      if (m.kind === "html") expect(parsed.html).toContain("<p>Hello support,</p>")
      if (m.kind === "attachment") expect(parsed.attachments).toHaveLength(1)
      expect(parsed.attachments.every((a) => a.size <= 50_000)).toBe(true)
      for (const [language, pattern] of [["fr", /é/], ["ru", /[а-я]/], ["ja", /[ぁ-ん]/], ["emoji", /😞/]] as const) {
        if (pattern.test(parsed.subject ?? "")) languages.add(language)
      }
    }
    expect([...languages].sort()).toEqual(["emoji", "fr", "ja", "ru"])
  })
})

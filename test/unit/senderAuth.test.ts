import dns from "node:dns"
import { generateKeyPairSync } from "node:crypto"
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, TestClock } from "effect"
import { authenticate, dkimSign } from "mailauth"
import { vi } from "vitest"
import { authservIdsIn, parseAuthenticationResults } from "../../src/mail/AuthResults.js"
import {
  organisationalDomain,
  readAuthenticationResults,
  sameOrganisation,
  SenderAuthenticator,
  verifyInProcess
} from "../../src/mail/SenderAuth.js"
import type { Resolver } from "../../src/mail/SenderAuth.js"
import { configLayer } from "./layers.js"

// Only so that one test can make mailauth throw; every other call goes to the real one.
vi.mock("mailauth", async (importOriginal) => {
  const actual = await importOriginal<typeof import("mailauth")>()
  return { ...actual, authenticate: vi.fn(actual.authenticate) }
})

const gmail = ["mx.google.com"]

/** As Gmail writes it (unfolded), for a domain with a DMARC record. */
const gmailPass =
  "mx.google.com; dkim=pass header.i=@example.com header.s=20230601 header.b=AbCd; spf=pass (google.com: domain of alice@example.com designates 209.85.220.41 as permitted sender) smtp.mailfrom=alice@example.com; dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com"

/** As Exchange Online writes it: no authserv-id at all, no space after some ";". */
const exchangeOnline =
  "spf=pass (sender IP is 40.107.22.85) smtp.mailfrom=example.com; dkim=pass (signature was verified) header.d=example.com;dmarc=pass action=none header.from=example.com;compauth=pass reason=100"

/** As OpenDKIM writes it under Postfix (the milter's authserv-id is the host name). */
const openDkim =
  "mail.example.net; dkim=pass (2048-bit key; unprotected) header.d=example.com header.i=@example.com header.a=rsa-sha256 header.s=mail header.b=\"Xk3Lm9Qp\"; dkim-atps=neutral"

/** As OpenDMARC writes it, in a header of its own, added after OpenDKIM's. */
const openDmarc = "mail.example.net; dmarc=pass (p=reject dis=none) header.from=example.com"

describe("readAuthenticationResults: real headers", () => {
  it("reads Gmail's verdict: dkim by header.i, spf by smtp.mailfrom, dmarc", () => {
    const auth = readAuthenticationResults([gmailPass], gmail, "alice@example.com")
    expect(auth).toEqual({
      authenticated: true,
      source: "header",
      authservId: "mx.google.com",
      dmarc: "pass",
      dkim: [{ result: "pass", domain: "example.com", aligned: true }],
      spf: { result: "pass", domain: "example.com", aligned: true },
      reason: "dmarc=pass at mx.google.com"
    })
  })

  it("takes Gmail's dkim=pass header.i=@domain as the signing domain when there is no DMARC verdict", () => {
    const header =
      "mx.google.com; dkim=pass header.i=@example.com header.s=s1 header.b=Qw3rTy+/; spf=pass (google.com: domain of bounces+123@em.sender.test designates 203.0.113.5 as permitted sender) smtp.mailfrom=\"bounces+123@em.sender.test\""
    const auth = readAuthenticationResults([header], gmail, "alice@example.com")
    expect(auth.authenticated).toBe(true)
    expect(auth.dkim).toEqual([{ result: "pass", domain: "example.com", aligned: true }])
    expect(auth.spf).toEqual({ result: "pass", domain: "em.sender.test", aligned: false })
    expect(auth.reason).toBe("dkim=pass for example.com, aligned with example.com, at mx.google.com")
  })

  it("finds no authserv-id in Exchange Online's header, so no setting makes it count", () => {
    expect(parseAuthenticationResults(exchangeOnline)).toEqual({ authservId: null, results: [] })
    const auth = readAuthenticationResults(
      [exchangeOnline],
      ["spf", "spf=pass", "spf.protection.outlook.com", "mx.microsoft.com"],
      "alice@example.com"
    )
    expect(auth.authenticated).toBe(false)
    expect(auth.source).toBe("none")
    expect(auth.reason).toContain("1 without an authserv-id, as Exchange Online writes them")
  })

  it("reads Microsoft's resinfo shape behind an authserv-id with a version (its ARC-Authentication-Results)", () => {
    const header = `mx.microsoft.com 1; ${exchangeOnline}`
    const auth = readAuthenticationResults([header], ["mx.microsoft.com"], "alice@example.com")
    expect(auth).toMatchObject({
      authenticated: true,
      authservId: "mx.microsoft.com",
      dmarc: "pass",
      dkim: [{ result: "pass", domain: "example.com", aligned: true }],
      spf: { result: "pass", domain: "example.com", aligned: true }
    })
  })

  it("reads OpenDKIM's header, whose comment holds a \";\", and an OpenDMARC header above it", () => {
    const dkimOnly = readAuthenticationResults([openDkim], ["mail.example.net"], "bob@example.com")
    expect(dkimOnly.authenticated).toBe(true)
    expect(dkimOnly.dkim).toEqual([{ result: "pass", domain: "example.com", aligned: true }])
    expect(dkimOnly.reason).toBe("dkim=pass for example.com, aligned with example.com, at mail.example.net")

    const both = readAuthenticationResults([openDmarc, openDkim], ["mail.example.net"], "bob@example.com")
    expect(both).toMatchObject({ authenticated: true, dmarc: "pass", reason: "dmarc=pass at mail.example.net" })
  })

  it("handles comments (nested, with ; and =) and quoted strings (with ;, = and parentheses)", () => {
    const header = [
      "mx.google.com (Google's MX; trusted (really));",
      "dkim=pass (signature for header.d=attacker.test; fine) header.i=@example.com header.s=s1 header.b=\"Ab=;Cd\";",
      "spf=neutral (google.com: 198.51.100.1 is neither permitted nor denied by domain of \"a(b)\"@other.test) smtp.mailfrom=\"a;(b)=\"@other.test;",
      "dmarc=fail (p=REJECT sp=REJECT dis=REJECT) header.from=example.com"
    ].join(" ")
    const parsed = parseAuthenticationResults(header)
    expect(parsed.authservId).toBe("mx.google.com")
    expect(parsed.results.map((r) => `${r.method}=${r.result}`)).toEqual(["dkim=pass", "spf=neutral", "dmarc=fail"])
    expect(Object.fromEntries(parsed.results[0]!.properties)).toEqual({
      "header.i": "@example.com",
      "header.s": "s1",
      "header.b": "Ab=;Cd"
    })
    const auth = readAuthenticationResults([header], gmail, "alice@example.com")
    expect(auth.dkim).toEqual([{ result: "pass", domain: "example.com", aligned: true }])
    expect(auth.spf).toEqual({ result: "neutral", domain: "other.test", aligned: false })
    expect(auth.dmarc).toBe("fail")
  })

  it("reads a quoted authserv-id, a method version and \"none\" as the only resinfo", () => {
    expect(parseAuthenticationResults("\"mx.google.com\"; dkim/1=pass header.d=example.com").results[0]).toMatchObject({
      method: "dkim",
      result: "pass"
    })
    const none = readAuthenticationResults(["mx.google.com 1; none"], gmail, "alice@example.com")
    expect(none).toMatchObject({ authenticated: false, source: "header", authservId: "mx.google.com", dkim: [], spf: null })
    expect(none.reason).toBe("no dkim, spf or dmarc result at mx.google.com")
  })
})

describe("authservIdsIn", () => {
  it("names each Authentication-Results header's server, topmost first, folded or not, and null for Exchange Online's", () => {
    const block = Buffer.from(
      "Received: from mx.example.net\r\n" +
        "Authentication-Results: mx.google.com;\r\n       dkim=pass header.i=@example.com\r\n" +
        "authentication-results: spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=example.com; dkim=none\r\n" +
        "From: a@example.com\r\n" +
        "Authentication-Results: \"quoted.example\" (a comment); none\r\n\r\n"
    )
    expect(authservIdsIn(block)).toEqual(["mx.google.com", null, "quoted.example"])
    expect(authservIdsIn(Buffer.from("From: a@example.com\r\n\r\n"))).toEqual([])
  })
})

describe("readAuthenticationResults: whose header counts", () => {
  it("ignores a pass from an authserv-id that is not trusted", () => {
    const auth = readAuthenticationResults(
      ["evil.example; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"],
      gmail,
      "alice@example.com"
    )
    expect(auth).toMatchObject({ authenticated: false, source: "none", authservId: null, dkim: [] })
    expect(auth.reason).toBe(
      "no Authentication-Results from a trusted server (TRUSTED_AUTHSERV_IDS=mx.google.com); ignored 1 from other servers"
    )
  })

  it("ignores ids that only start or end like a trusted one", () => {
    for (const id of ["mx.google.com.evil.test", "evil-mx.google.com", "mx.google"]) {
      const auth = readAuthenticationResults([`${id}; dmarc=pass header.from=example.com`], gmail, "alice@example.com")
      expect(auth.authenticated, id).toBe(false)
    }
  })

  it("reads the trusted fail below an untrusted pass", () => {
    const auth = readAuthenticationResults(
      [
        "evil.example; dkim=pass header.d=example.com; dmarc=pass header.from=example.com",
        "mx.google.com; dkim=fail header.i=@example.com; spf=fail smtp.mailfrom=alice@example.com; dmarc=fail (p=REJECT sp=REJECT dis=QUARANTINE) header.from=example.com"
      ],
      gmail,
      "alice@example.com"
    )
    expect(auth).toMatchObject({ authenticated: false, source: "header", authservId: "mx.google.com", dmarc: "fail" })
    expect(auth.reason).toBe("dkim=fail, spf=fail, dmarc=fail at mx.google.com")
  })

  it("reads only the topmost trusted header: one with the same id further down was in the mail when it arrived", () => {
    const auth = readAuthenticationResults(
      [
        "mx.google.com; spf=softfail (google.com: domain of transitioning x@spammer.test does not designate 198.51.100.7 as permitted sender) smtp.mailfrom=x@spammer.test; dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=example.com",
        "mx.google.com; dkim=pass header.i=@example.com; spf=pass smtp.mailfrom=alice@example.com; dmarc=pass header.from=example.com"
      ],
      gmail,
      "alice@example.com"
    )
    expect(auth).toMatchObject({ authenticated: false, dmarc: "fail", dkim: [] })
  })

  it("compares ids, methods, results and domains case-insensitively", () => {
    const auth = readAuthenticationResults(["MX.Google.COM; DKIM=Pass header.i=@Example.COM"], ["Mx.Google.Com"], "alice@example.com")
    expect(auth).toMatchObject({ authenticated: true, authservId: "mx.google.com", dkim: [{ result: "pass", domain: "example.com" }] })
  })

  it("trusts several ids", () => {
    const trusted = ["mx.google.com", "mail.example.net"]
    expect(readAuthenticationResults([openDkim], trusted, "bob@example.com").authenticated).toBe(true)
    expect(readAuthenticationResults([openDkim], gmail, "bob@example.com").authenticated).toBe(false)
  })
})

describe("readAuthenticationResults: alignment with the From domain", () => {
  const at = (resinfo: string, from: string) => readAuthenticationResults([`mx.google.com; ${resinfo}`], gmail, from)

  it("aligns a subdomain's DKIM signature with the organisation", () => {
    const auth = at("dkim=pass header.d=mail.example.com header.s=s1", "alice@example.com")
    expect(auth.authenticated).toBe(true)
    expect(auth.dkim).toEqual([{ result: "pass", domain: "mail.example.com", aligned: true }])
  })

  it("does not align two organisations under one public suffix", () => {
    const auth = at("dkim=pass header.d=example.co.uk", "alice@other.co.uk")
    expect(auth.authenticated).toBe(false)
    expect(auth.reason).toBe("dkim=pass for example.co.uk is not aligned with other.co.uk (at mx.google.com)")
  })

  it("does not count a third party's DKIM signature", () => {
    const auth = at("dkim=pass header.d=mailer.other.test; dkim=fail header.d=example.com; dmarc=fail header.from=example.com", "alice@example.com")
    expect(auth.authenticated).toBe(false)
    expect(auth.dkim).toEqual([
      { result: "pass", domain: "mailer.other.test", aligned: false },
      { result: "fail", domain: "example.com", aligned: true }
    ])
    expect(auth.reason).toBe("dkim=pass for mailer.other.test is not aligned with example.com (at mx.google.com)")
  })

  it("counts an aligned SPF pass, and smtp.helo when there is no smtp.mailfrom", () => {
    const mailFrom = at("spf=pass (google.com: domain of bounce@mail.example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=bounce@mail.example.com", "alice@example.com")
    expect(mailFrom).toMatchObject({ authenticated: true, spf: { result: "pass", domain: "mail.example.com", aligned: true } })
    expect(mailFrom.reason).toBe("spf=pass for mail.example.com, aligned with example.com, at mx.google.com")
    expect(at("spf=pass smtp.helo=mx1.example.com", "alice@example.com").authenticated).toBe(true)
    expect(at("spf=pass smtp.mailfrom=bounce@other.test", "alice@example.com").authenticated).toBe(false)
    expect(at("spf=softfail smtp.mailfrom=alice@example.com", "alice@example.com").authenticated).toBe(false)
  })

  it("does not count dmarc=pass for another From domain", () => {
    const auth = at("dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=other.test", "alice@example.com")
    expect(auth.authenticated).toBe(false)
    expect(auth.reason).toBe("dmarc=pass for other.test does not match the From domain example.com (at mx.google.com)")
    expect(at("dmarc=pass header.from=example.com", "alice@sub.example.com").authenticated).toBe(true)
    expect(at("dmarc=pass header.from=sub.example.com", "alice@example.com").authenticated).toBe(false)
  })

  it("never puts the sender's address in the reason", () => {
    const headers = [
      gmailPass,
      "mx.google.com; spf=pass (google.com: domain of alice@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=alice@example.com",
      "mx.google.com; spf=pass smtp.mailfrom=alice@other.test",
      "mx.google.com; dkim=fail header.i=alice@example.com",
      "evil.example; dmarc=pass header.from=alice@example.com"
    ]
    for (const header of headers) {
      expect(readAuthenticationResults([header], gmail, "alice@example.com").reason).not.toContain("alice")
    }
  })

  it("knows organisational domains from the public suffix list, private suffixes included", () => {
    expect(organisationalDomain("Mail.Example.CO.UK")).toBe("example.co.uk")
    expect(organisationalDomain("localhost")).toBe("localhost")
    expect(sameOrganisation("mail.example.com", "EXAMPLE.com")).toBe(true)
    expect(sameOrganisation("example.co.uk", "other.co.uk")).toBe(false)
    expect(sameOrganisation("alice.github.io", "bob.github.io")).toBe(false)
    expect(sameOrganisation("", "")).toBe(false)
  })

  it("gives the same organisational domain from its memory, across its clearing, as it worked out first", () => {
    const asked = ["Mail.Example.CO.UK", "mail.example.co.uk.", "alice.github.io", " bob.GitHub.io ", "localhost"]
    const first = asked.map(organisationalDomain)
    expect(first).toEqual(["example.co.uk", "example.co.uk", "alice.github.io", "bob.github.io", "localhost"])
    expect(asked.map(organisationalDomain)).toEqual(first)
    // More distinct domains than it keeps: it forgets them all at once and works each out again.
    for (let i = 0; i < 5000; i++) expect(organisationalDomain(`host${i}.customer${i}.co.uk`)).toBe(`customer${i}.co.uk`)
    expect(asked.map(organisationalDomain)).toEqual(first)
  })
})

// In-process verification --------------------------------------------------------------------------

const keys = generateKeyPairSync("rsa", { modulusLength: 2048 })
const privateKey = keys.privateKey.export({ type: "pkcs8", format: "pem" }).toString()
const publicKey = keys.publicKey.export({ type: "spki", format: "der" }).toString("base64")

const message = (body = "Hello, I need help with my order.") =>
  [
    "From: Alice <alice@example.com>",
    "To: support@example.net",
    "Subject: My order",
    "Date: Tue, 24 Nov 2026 10:00:00 +0000",
    "Message-ID: <order-1@example.com>",
    "Content-Type: text/plain; charset=utf-8",
    "",
    body,
    ""
  ].join("\r\n")

const sign = async (source: string, signingDomain = "example.com") => {
  const key = { signingDomain, selector: "s1", privateKey }
  const { signatures, errors } = await dkimSign(source, { ...key, signatureData: [key] })
  expect(errors).toEqual([])
  expect(signatures).toContain("DKIM-Signature:")
  return Buffer.from(signatures + source)
}

const notFound = (name: string) => Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: "ENOTFOUND" })

/** DNS for example.com and mailer.other.test, recording every question. */
const fakeDns = () => {
  const records: Record<string, ReadonlyArray<ReadonlyArray<string>>> = {
    "s1._domainkey.example.com": [[`v=DKIM1; k=rsa; p=${publicKey}`]],
    "_dmarc.example.com": [["v=DMARC1; p=reject"]],
    "s1._domainkey.mailer.other.test": [[`v=DKIM1; k=rsa; p=${publicKey}`]]
  }
  const asked: Array<string> = []
  const resolver: Resolver = async (name, rrtype) => {
    asked.push(`${name} ${rrtype}`)
    const answer = rrtype === "TXT" ? records[name] : undefined
    if (answer === undefined) throw notFound(name)
    return answer
  }
  return { asked, resolver }
}

describe("verifyInProcess", () => {
  // The resolver given must be the only way out: the system resolver answers nothing here.
  beforeEach(() => {
    vi.spyOn(dns.promises, "resolve").mockImplementation(() => Promise.reject(new Error("the network was asked")))
  })
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it("authenticates a mail DKIM-signed by the From domain, asking only the given resolver", async () => {
    const { asked, resolver } = fakeDns()
    const auth = await verifyInProcess(await sign(message()), "alice@example.com", resolver)
    expect(auth).toEqual({
      authenticated: true,
      source: "verified",
      authservId: "mailroom",
      dmarc: "pass",
      dkim: [{ result: "pass", domain: "example.com", aligned: true }],
      spf: null,
      reason: "dmarc=pass verified by mailroom"
    })
    expect(asked.sort()).toEqual(["_dmarc.example.com TXT", "s1._domainkey.example.com TXT"])
    expect(dns.promises.resolve).not.toHaveBeenCalled()
  })

  it("does not authenticate a mail whose body changed after signing", async () => {
    const signed = (await sign(message())).toString().replace("my order", "my refund to another account")
    const { asked, resolver } = fakeDns()
    const auth = await verifyInProcess(Buffer.from(signed), "alice@example.com", resolver)
    expect(auth).toMatchObject({ authenticated: false, source: "verified", dmarc: "fail" })
    expect(auth.dkim).toEqual([{ result: "neutral", domain: "example.com", aligned: true }])
    expect(asked.every((question) => question.endsWith("example.com TXT"))).toBe(true)
  })

  it("does not authenticate an unsigned mail", async () => {
    const { asked, resolver } = fakeDns()
    const auth = await verifyInProcess(Buffer.from(message()), "alice@example.com", resolver)
    expect(auth).toMatchObject({ authenticated: false, source: "verified", dmarc: "fail" })
    expect(auth.dkim.some((check) => check.result === "pass")).toBe(false)
    expect(asked).toEqual(["_dmarc.example.com TXT"])
  })

  it("does not authenticate a mail signed only by a third party", async () => {
    const { resolver } = fakeDns()
    const auth = await verifyInProcess(await sign(message(), "mailer.other.test"), "alice@example.com", resolver)
    expect(auth.authenticated).toBe(false)
    expect(auth.dkim).toEqual([{ result: "pass", domain: "mailer.other.test", aligned: false }])
    expect(auth.reason).toBe("dkim=pass for mailer.other.test is not aligned with example.com (verified by mailroom)")
  })

  it("judges the From address it is given, not only what the signature covers", async () => {
    const { resolver } = fakeDns()
    const auth = await verifyInProcess(await sign(message()), "mallory@other.test", resolver)
    expect(auth.authenticated).toBe(false)
  })

  it("without a resolver asks the system's DNS, which these tests stub", async () => {
    const auth = await verifyInProcess(await sign(message()), "alice@example.com")
    expect(auth.authenticated).toBe(false)
    expect(vi.mocked(dns.promises.resolve).mock.calls.map(([name]) => name)).toContain("s1._domainkey.example.com")
  })

  it("answers, unauthenticated, when DNS fails", async () => {
    const down: Resolver = () => Promise.reject(Object.assign(new Error("queryTxt ETIMEOUT"), { code: "ETIMEOUT" }))
    const auth = await verifyInProcess(await sign(message()), "alice@example.com", down)
    expect(auth).toMatchObject({ authenticated: false, source: "verified", authservId: "mailroom", dmarc: "temperror" })
    expect(auth.dkim.map((check) => check.result)).toEqual(["temperror"])
  })

  it("answers, unauthenticated, when mailauth throws", async () => {
    vi.mocked(authenticate).mockRejectedValueOnce(new Error("Unexpected end of headers from <alice@example.com>\nat line 3"))
    const auth = await verifyInProcess(await sign(message()), "alice@example.com", fakeDns().resolver)
    expect(auth).toEqual({
      authenticated: false,
      source: "verified",
      authservId: "mailroom",
      dmarc: null,
      dkim: [],
      spf: null,
      reason: "DKIM/DMARC verification failed: Unexpected end of headers from <address>"
    })
  })
})

describe("SenderAuthenticator", () => {
  const layer = (env: Record<string, string>, resolver: Resolver) =>
    SenderAuthenticator.Test(resolver).pipe(Layer.provide(configLayer(env)))
  const check = (source: Buffer, authResults: ReadonlyArray<string> = []) =>
    Effect.flatMap(SenderAuthenticator, (senders) => senders.check(source, { from: { address: "alice@example.com" }, authResults }))

  it.effect("SENDER_VERIFY=headers: a signed mail without a trusted header is not authenticated, and DNS is not asked", () => {
    const { asked, resolver } = fakeDns()
    return Effect.gen(function*() {
      const auth = yield* check(yield* Effect.promise(() => sign(message())))
      expect(auth).toMatchObject({ authenticated: false, source: "none" })
      expect(auth.reason).toBe("no Authentication-Results from a trusted server (TRUSTED_AUTHSERV_IDS=mx.google.com)")
      expect(asked).toEqual([])
    }).pipe(Effect.provide(layer({ SENDER_VERIFY: "headers" }, resolver)))
  })

  it.effect("SENDER_VERIFY=dkim: the same mail is verified here", () => {
    const { asked, resolver } = fakeDns()
    return Effect.gen(function*() {
      const auth = yield* check(yield* Effect.promise(() => sign(message())))
      expect(auth).toMatchObject({ authenticated: true, source: "verified", authservId: "mailroom" })
      expect(asked.length).toBeGreaterThan(0)
    }).pipe(Effect.provide(layer({ SENDER_VERIFY: "dkim" }, resolver)))
  })

  it.effect("SENDER_VERIFY=dkim: a trusted header still decides first", () => {
    const { asked, resolver } = fakeDns()
    return Effect.gen(function*() {
      const signed = yield* Effect.promise(() => sign(message()))
      const auth = yield* check(signed, ["mail.example.net; dkim=fail (bad signature) header.d=example.com"])
      expect(auth).toMatchObject({ authenticated: false, source: "header", authservId: "mail.example.net" })
      expect(asked).toEqual([])
    }).pipe(Effect.provide(layer({ SENDER_VERIFY: "dkim", TRUSTED_AUTHSERV_IDS: " mx.google.com, Mail.Example.NET " }, resolver)))
  })

  it.effect("SENDER_VERIFY=dkim: DNS that never answers leaves the mail unauthenticated after 30 seconds", () =>
    Effect.gen(function*() {
      const signed = yield* Effect.promise(() => sign(message()))
      const fiber = yield* Effect.fork(check(signed))
      yield* TestClock.adjust("29 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const auth = yield* Fiber.join(fiber)
      expect(auth).toMatchObject({ authenticated: false, source: "verified", reason: "DKIM/DMARC lookups took over 30s" })
    }).pipe(Effect.provide(layer({ SENDER_VERIFY: "dkim" }, () => new Promise(() => {})))))

  it.effect("the Default layer reads TRUSTED_AUTHSERV_IDS", () =>
    Effect.gen(function*() {
      const auth = yield* check(Buffer.from(message()), [gmailPass, openDkim])
      expect(auth).toMatchObject({ authenticated: true, source: "header", authservId: "mail.example.net" })
    }).pipe(Effect.provide(SenderAuthenticator.Default.pipe(Layer.provide(configLayer({ TRUSTED_AUTHSERV_IDS: "mail.example.net" }))))))

  it.effect("rejects an unknown SENDER_VERIFY", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(check(Buffer.from(message())).pipe(
        Effect.provide(SenderAuthenticator.Default.pipe(Layer.provide(configLayer({ SENDER_VERIFY: "spf" }))))
      ))
      expect(String(error)).toContain("SENDER_VERIFY")
    }))
})

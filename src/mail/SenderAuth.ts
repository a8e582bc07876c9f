import { Duration, Effect, Layer } from "effect"
import type { DNSResolver } from "mailauth"
import { getDomain } from "tldts"
import { SenderAuthConfig } from "../config/Mail.js"
import { boundedMemo } from "../lib/BoundedMemo.js"
import type { AuthCheck, SenderAuth } from "../log/Event.js"
import { unknownSender } from "../log/Event.js"
import { parseAuthenticationResults } from "./AuthResults.js"
import type { AuthenticationResults } from "./AuthResults.js"
import { annotateWhenTracing, withSpanWhenTracing } from "../telemetry/Tracing.js"

/** A DNS lookup as mailauth makes it: `dns.promises.resolve`'s shape. */
export type Resolver = (name: string, rrtype: string) => Promise<unknown>

/**
 * Private suffixes count too, so that alice.github.io and bob.github.io are two organisations.
 * Remembered: each mail asks this of the same few domains several times over (its From against each
 * result), and each tldts look-up costs microseconds.
 */
export const organisationalDomain = boundedMemo({ entries: 2_048, longestKey: 253 }, (domain: string): string => {
  const lower = domain.trim().toLowerCase().replace(/\.$/, "")
  return getDomain(lower, { allowPrivateDomains: true }) ?? lower
})

/** DMARC relaxed alignment: mail.example.com and example.com are one organisation. */
export const sameOrganisation = (a: string, b: string): boolean =>
  a.trim() !== "" && b.trim() !== "" && organisationalDomain(a) === organisationalDomain(b)

/** The domain of an address, `@domain` or a bare domain; lower-cased, without anything a header could smuggle in. */
const domainOf = (value: string | undefined): string | null => {
  if (value === undefined) return null
  const domain = value.slice(value.lastIndexOf("@") + 1).replace(/[<>\s]/g, "").replace(/\.$/, "").toLowerCase()
  return domain === "" || /[\x00-\x1f\x7f]/.test(domain) ? null : domain.slice(0, 253)
}

// The verdict ------------------------------------------------------------------------------------

interface Findings {
  readonly dmarc: { readonly result: string; readonly from: string | null } | null
  readonly dkim: ReadonlyArray<AuthCheck>
  readonly spf: AuthCheck | null
}

/** DMARC judged the From domain, or (mailauth writes it so) its organisational domain. */
const dmarcMatches = (headerFrom: string | null, fromDomain: string) =>
  headerFrom === null || headerFrom === fromDomain || headerFrom === organisationalDomain(fromDomain)

const verdict = (
  findings: Findings,
  fromDomain: string,
  base: Pick<SenderAuth, "source" | "authservId">,
  where: string
): SenderAuth => {
  // `base` written out, not spread: it comes in two shapes, and V8's spread of it was a quarter of a
  // sender check's time (docs/performance.md).
  const done = (authenticated: boolean, reason: string): SenderAuth => ({
    source: base.source,
    authservId: base.authservId,
    authenticated,
    dmarc: findings.dmarc?.result ?? null,
    dkim: findings.dkim,
    spf: findings.spf,
    reason
  })
  const { dmarc, dkim, spf } = findings
  const dmarcPass = dmarc?.result === "pass" ? dmarc : undefined
  const dkimPasses = dkim.filter((check) => check.result === "pass")
  const spfPass = spf?.result === "pass" ? spf : undefined
  const alignedDkim = dkimPasses.find((check) => check.aligned)
  if (fromDomain === "") return done(false, `the From address has no domain (${where})`)
  if (dmarcPass && dmarcMatches(dmarcPass.from, fromDomain)) return done(true, `dmarc=pass ${where}`)
  if (alignedDkim) return done(true, `dkim=pass for ${alignedDkim.domain}, aligned with ${fromDomain}, ${where}`)
  if (spfPass?.aligned) return done(true, `spf=pass for ${spfPass.domain}, aligned with ${fromDomain}, ${where}`)
  if (dmarcPass) return done(false, `dmarc=pass for ${dmarcPass.from} does not match the From domain ${fromDomain} (${where})`)
  const unaligned = dkimPasses[0] ?? spfPass
  if (unaligned) {
    const method = unaligned === spfPass ? "spf" : "dkim"
    return done(false, `${method}=pass for ${unaligned.domain ?? "no domain"} is not aligned with ${fromDomain} (${where})`)
  }
  const seen = [
    ...dkim.map((check) => `dkim=${check.result}`),
    ...(spf ? [`spf=${spf.result}`] : []),
    ...(dmarc ? [`dmarc=${dmarc.result}`] : [])
  ]
  return done(false, seen.length > 0 ? `${[...new Set(seen)].join(", ")} ${where}` : `no dkim, spf or dmarc result ${where}`)
}

const authCheck = (result: string, domain: string | null, fromDomain: string): AuthCheck => ({
  result,
  domain,
  aligned: domain !== null && sameOrganisation(domain, fromDomain)
})

/**
 * The verdict of the topmost Authentication-Results of a trusted authserv-id. Lower ones are not read:
 * anyone can put a header with that id into the mail he sends, and only the receiving server's own
 * (added last, so topmost) is known to be real. Headers of other ids count for nothing either way.
 */
export const readAuthenticationResults = (
  headers: ReadonlyArray<string>,
  trusted: ReadonlyArray<string>,
  fromAddress: string
): SenderAuth => {
  const trustedIds = new Set(trusted.map((id) => id.trim().toLowerCase()))
  // Topmost first, and no further than the first trusted one: the lower ones are not read anyway.
  const parsed: Array<AuthenticationResults> = []
  let found: AuthenticationResults | undefined
  for (const header of headers) {
    const results = parseAuthenticationResults(header)
    if (results.authservId !== null && trustedIds.has(results.authservId)) {
      found = results
      break
    }
    parsed.push(results)
  }
  if (found === undefined) {
    const anonymous = parsed.filter((header) => header.authservId === null).length
    const ignored = [
      ...(parsed.length > anonymous ? [`${parsed.length - anonymous} from other servers`] : []),
      ...(anonymous > 0 ? [`${anonymous} without an authserv-id, as Exchange Online writes them`] : [])
    ]
    return {
      ...unknownSender,
      reason: `no Authentication-Results from a trusted server (TRUSTED_AUTHSERV_IDS=${[...trustedIds].join(",")})${
        ignored.length > 0 ? `; ignored ${ignored.join(" and ")}` : ""
      }`
    }
  }
  const fromDomain = domainOf(fromAddress) ?? ""
  const first = (method: string) => found.results.find((resinfo) => resinfo.method === method)
  const dmarc = first("dmarc")
  const spf = first("spf")
  const findings: Findings = {
    dmarc: dmarc ? { result: dmarc.result, from: domainOf(dmarc.properties.get("header.from")) } : null,
    dkim: found.results.filter((resinfo) => resinfo.method === "dkim").map((resinfo) =>
      authCheck(
        resinfo.result,
        domainOf(resinfo.properties.get("header.d")) ?? domainOf(resinfo.properties.get("header.i")),
        fromDomain
      )
    ),
    spf: spf
      ? authCheck(spf.result, domainOf(spf.properties.get("smtp.mailfrom")) ?? domainOf(spf.properties.get("smtp.helo")), fromDomain)
      : null
  }
  return verdict(findings, fromDomain, { source: "header", authservId: found.authservId }, `at ${found.authservId}`)
}

// In-process verification ------------------------------------------------------------------------

/** An error's first line, without any address in it: the reason is stored and shown. */
const firstLine = (cause: unknown) =>
  (cause instanceof Error ? cause.message : String(cause)).split(/\r?\n/)[0]!.replace(/\S*@\S+/g, "<address>").slice(0, 200)

/**
 * DKIM and DMARC checked here, for mail servers that record no verdict. SPF is left out (null): it
 * judges the IP address that handed the mail to the receiving server, which only that server knows;
 * mailroom sees the mailbox, not the connection. Never throws.
 */
export const verifyInProcess = async (source: Buffer, fromAddress: string, resolver?: Resolver): Promise<SenderAuth> => {
  const base = { source: "verified", authservId: "mailroom" } as const
  const fromDomain = domainOf(fromAddress) ?? ""
  try {
    // Loaded on first use: mailauth is large, and with SENDER_VERIFY=headers it is never needed.
    const { authenticate } = await import("mailauth")
    const result = await authenticate(source, {
      mta: "mailroom",
      disableArc: true,
      disableBimi: true,
      ...(resolver ? { resolver: resolver as DNSResolver } : {})
    })
    const dmarc = result.dmarc
      ? {
        result: String(result.dmarc.status.result),
        from: domainOf((result.dmarc.status.header as { from?: string } | undefined)?.from)
      }
      : null
    const dkim = (result.dkim.results ?? []).map((signature) =>
      authCheck(String(signature.status.result), domainOf(signature.signingDomain), fromDomain)
    )
    return verdict({ dmarc, dkim, spf: null }, fromDomain, base, "verified by mailroom")
  } catch (cause) {
    return {
      ...base,
      authenticated: false,
      dmarc: null,
      dkim: [],
      spf: null,
      reason: `DKIM/DMARC verification failed: ${firstLine(cause)}`
    }
  }
}

// The service ------------------------------------------------------------------------------------

/** What `check` reads of a parsed mail. */
export interface SenderEmail {
  readonly from: { readonly address: string }
  readonly authResults: ReadonlyArray<string>
}

/** DNS that does not answer must not hold up intake: the mail is taken as unauthenticated. */
const verifyTimeout = Duration.seconds(30)

const make = (config: SenderAuthConfig, resolver?: Resolver) => {
  const verify = (source: Buffer, fromAddress: string) =>
    Effect.promise(() => verifyInProcess(source, fromAddress, resolver)).pipe(
      Effect.timeoutTo({
        duration: verifyTimeout,
        onSuccess: (auth): SenderAuth => auth,
        onTimeout: (): SenderAuth => ({
          authenticated: false,
          source: "verified",
          authservId: "mailroom",
          dmarc: null,
          dkim: [],
          spf: null,
          reason: `DKIM/DMARC lookups took over ${Duration.format(verifyTimeout)}`
        })
      })
    )

  /** The verdict the trusted headers give; undefined when DKIM and DMARC must be checked here (DNS). */
  const checkNow = (email: SenderEmail): SenderAuth | undefined => {
    const fromHeader = readAuthenticationResults(email.authResults, config.trustedAuthservIds, email.from.address)
    return fromHeader.source === "none" && config.verify === "dkim" ? undefined : fromHeader
  }

  // A span and its attributes only while tracing: this runs once per mail.
  const check = (source: Buffer, email: SenderEmail) =>
    Effect.gen(function*() {
      const auth = checkNow(email) ?? (yield* verify(source, email.from.address))
      yield* annotateWhenTracing({
        "mailroom.sender.authenticated": auth.authenticated,
        "mailroom.sender.auth_source": auth.source,
        "mailroom.sender.authserv_id": auth.authservId ?? ""
      })
      return auth
    }).pipe(withSpanWhenTracing("SenderAuthenticator.check", { captureStackTrace: false }))

  return { check, checkNow } as const
}

/**
 * Whether a mail's From is really its sender's: the trusted receiving server's Authentication-Results,
 * else (SENDER_VERIFY=dkim) DKIM and DMARC checked here. `check` never fails: a mail that cannot be
 * judged is unauthenticated, with the reason.
 */
export class SenderAuthenticator extends Effect.Service<SenderAuthenticator>()("mailroom/SenderAuthenticator", {
  effect: Effect.map(SenderAuthConfig, (config) => make(config))
}) {
  /** The same, with DNS answered by `resolver`: for tests, which never reach the network. */
  static readonly Test = (resolver: Resolver) =>
    Layer.effect(SenderAuthenticator, Effect.map(SenderAuthConfig, (config) => SenderAuthenticator.make(make(config, resolver))))
}

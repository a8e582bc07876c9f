import { parse } from "tldts"
import { eventLimits } from "../mail/ParseMail.js"
import { deedsIn } from "./Deeds.js"
import { unbackedPromise, unknownMoney, withoutAmounts } from "./Money.js"
import type { OwnAddresses } from "./Reply.js"
import { isOwnAddress, withoutTicketTokens } from "./Reply.js"
import { asksForSecret } from "./Secrets.js"
import { vouchingIn } from "./Vouching.js"

/** What an answer is checked against before it may go out without a person looking at it. */
export interface AnswerContext {
  readonly text: string
  /** The help passages the agent was given. */
  readonly material: ReadonlyArray<string>
  /** The sender's own words: this mail and their earlier messages on the ticket, without forwarded mail (ownWords). */
  readonly customerTexts: ReadonlyArray<string>
  readonly own: OwnAddresses
  readonly maxChars: number
  /** The model stopped at its token limit. */
  readonly truncated: boolean
  /** Words of the mail's plain-text part that its HTML does not show (PartsAgree): the parts were written apart. */
  readonly unshown?: ReadonlyArray<string>
  /** The mail has both parts, and one was cut at its event limit: its text part could not be checked (PartsAgree.partsUncheckable). */
  readonly partsUnchecked?: boolean
}

const urls = /\b(?:https?:\/\/|www\.)[^\s<>"'`)\]}]+/gi
const hostnames = /\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]\b(?:\/[^\s<>"'`)\]}]*)?/gi
const addresses = /[a-z0-9._%+-]+@(?:[a-z0-9-]+\.)+[a-z]{2,}/gi

const trimmed = (value: string) => value.toLowerCase().replace(/[.,;:!?]+$/, "")
const withoutScheme = (url: string) => url.replace(/^https?:\/\//, "")

/** The links (with or without a scheme) and the email addresses a text holds, lower-cased. */
export const linksIn = (text: string): { readonly links: ReadonlyArray<string>; readonly addresses: ReadonlyArray<string> } => {
  const found = new Set<string>()
  const mails = new Set([...text.matchAll(addresses)].map((m) => trimmed(m[0])))
  for (const match of text.matchAll(urls)) found.add(withoutScheme(trimmed(match[0])))
  // A bare domain inside an address or a URL already found is not a link of its own.
  const rest = text.replace(urls, " ").replace(addresses, " ")
  for (const match of rest.matchAll(hostnames)) {
    // A name under a real top-level domain is a link a mail client will show as one; "node.js" is not.
    if (parse(match[0].split("/")[0]!).isIcann === true) found.add(trimmed(match[0]))
  }
  return { links: [...found], addresses: [...mails] }
}

/** IBAN-shaped: country, check digits, then groups of four (the last shorter), spaced or not. */
const ibanLike = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b/g

/**
 * Each country's IBAN length: SWIFT's IBAN registry, the territories that use their country's
 * format under their own code, and the African and other formats in use outside the registry
 * (Nicaragua's older 32 too). A code of another country or length, such as a product code shaped like
 * one that passes the check digits (1 in 97 do), is no bank account.
 */
const ibanLengths: ReadonlyMap<string, ReadonlyArray<number>> = (() => {
  const table = new Map<string, Array<number>>()
  const registry = "AD24 AE23 AL28 AT20 AX18 AZ28 BA20 BE16 BG22 BH22 BI27 BL27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 " +
    "DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GF27 GG22 GI23 GL18 GP27 GR27 GT28 HN28 HR21 HU28 IE22 " +
    "IL23 IM22 IQ23 IS26 IT27 JE22 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MF27 MK19 MN20 " +
    "MQ27 MR27 MT31 MU30 NC27 NI28 NL18 NO15 OM23 PF27 PK24 PL28 PM27 PS29 PT25 QA29 RE27 RO24 RS22 RU33 SA24 SC31 " +
    "SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TF27 TL23 TN24 TR26 UA29 VA22 VG24 WF27 XK20 YE30 YT27"
  const outside = "AO25 BF28 BJ28 CF27 CG27 CI28 CM27 CV25 DZ26 GA27 GQ27 GW25 IR26 KM27 MA28 MG27 ML28 MZ25 NE28 NI32 SN28 TD27 TG28"
  for (const entry of `${registry} ${outside}`.split(" ")) {
    const country = entry.slice(0, 2)
    table.set(country, [...(table.get(country) ?? []), Number(entry.slice(2))])
  }
  return table
})()

/** ISO 13616: a known country's length, and the number with its first four characters moved to the end, letters as 10–35, mod 97 is 1. */
const validIban = (iban: string) => {
  if (!ibanLengths.get(iban.slice(0, 2))?.includes(iban.length)) return false
  const moved = iban.slice(4) + iban.slice(0, 4)
  let rest = 0
  for (const c of moved) {
    const value = c >= "A" ? String(c.charCodeAt(0) - 55) : c
    for (const digit of value) rest = (rest * 10 + Number(digit)) % 97
  }
  return rest === 1
}

/** The valid IBANs a text holds, without spaces. */
export const ibansIn = (text: string): ReadonlyArray<string> =>
  [...new Set([...text.matchAll(ibanLike)].map((match) => match[0].replace(/ /g, "")))].filter(validIban)

/** Dates and year ranges, which are digits in groups too but no one's number. */
const dates = /\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|(?:19|20)\d{2} ?- ?(?:19|20)\d{2})\b/g

/** An IPv4 address: four numbers of 0–255, dotted, not part of a longer dotted number (a version, a build). */
const ipv4 = /(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\w|\.\d)/g

/** The IPv4 addresses a text holds. */
export const ipAddressesIn = (text: string): ReadonlyArray<string> => [...new Set(text.match(ipv4) ?? [])]

/**
 * Digits as a person writes a phone number: after an optional +, in groups (some in parentheses)
 * joined by one space, dot, dash or slash, or " - "; not glued to a word, a + or a ticket's `#`. A
 * sentence's end (". ") joins nothing.
 */
const numberLike = /(?<![\w+#])(?:\+ ?)?\(?\d+\)?(?:(?: - |[ ./-]|(?<=\)))\(?\d+\)?)*(?!\w)/g

/** E.164 numbers have at most 15 digits; fewer than 7 are extensions, amounts, quantities. */
const isPhoneLength = (digits: string) => digits.length >= 7 && digits.length <= 15

/**
 * The phone numbers (7 to 15 digits, as digits) a text holds; IBANs, dates and IP addresses are none. Each pattern
 * here starts at a digit, a + or a word's edge and never backtracks far, so a customer's megabyte of
 * text is read in one pass (unlike `urls` and `addresses`, which only the bounded answer is given).
 */
export const phoneNumbersIn = (text: string): ReadonlyArray<{ readonly written: string; readonly digits: string }> =>
  [...text.replace(ibanLike, " ").replace(dates, " ").replace(ipv4, " ").matchAll(numberLike)].flatMap((match) => {
    const written = match[0].trim()
    // "+44 (0)20": the (0) is the trunk prefix dialled at home only, not a digit of the number.
    const digits = written.replace(/\(0\)/g, "").replace(/\D/g, "")
    return isPhoneLength(digits) ? [{ written, digits }] : []
  })

/**
 * One number written two ways: with or without its country code (+44 20 7946 0958, 020 7946 0958),
 * or the international prefix 00. Leading zeros are the trunk or international prefix; what is left
 * must match whole, or one must end with the other and differ only by a country code's 1–3 digits.
 */
const sameNumber = (a: string, b: string) => {
  const [x, y] = [a.replace(/^0+/, ""), b.replace(/^0+/, "")].sort((p, q) => p.length - q.length) as [string, string]
  return x === y || (x.length >= 7 && y.length - x.length <= 3 && y.endsWith(x))
}

/**
 * A long code of letters and digits: a wallet address (bc1q…, 0x…), a key, a reference number. One
 * nobody gave the model is made up, or someone's account to pay into.
 */
const codeLike = /\b(?=[a-z0-9]*\d)(?=[a-z0-9]*[a-z])[a-z0-9]{26,}\b/gi

/** The long codes a text holds, lower-cased (only the bounded answer is read with this). */
export const codesIn = (text: string): ReadonlyArray<string> => [...new Set([...text.matchAll(codeLike)].map((match) => match[0].toLowerCase()))]

/**
 * Where a forwarded mail starts in a customer's text: Gmail's and mailroom's own (a mail forwarded
 * as an attachment), Thunderbird's, Apple Mail's, Outlook's separators, as each client writes them
 * in English, German, French, Spanish, Italian, Dutch and Portuguese: a German customer's Gmail
 * forwards under "Weitergeleitete Nachricht", and what follows is no more their words than in English.
 */
const forwardedStart = new RegExp(
  "^(?:" + [
    // Gmail's "---------- X ---------", Thunderbird's "-------- X --------", Outlook's "-----X-----"
    String.raw`-{2,} ?(?:forwarded message|original message|weitergeleitete nachricht|ursprüngliche nachricht|message transféré|message d'origine|mensaje reenviado|mensaje original|messaggio inoltrato|messaggio originale|doorgestuurd bericht|oorspronkelijk bericht|mensagem encaminhada|mensagem original) ?-{2,}[ \t]*$`,
    // Apple Mail's
    String.raw`(?:begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié|inicio del mensaje reenviado|inizio messaggio inoltrato|begin doorgestuurd bericht|início da mensagem reencaminhada)[ \t]*:[ \t]*$`,
    // Outlook's line of underscores, then its From: block
    String.raw`_{10,}[ \t]*\n[ \t]*(?:from|von|de|da|van)[ \t]*:`
  ].join("|") + ")",
  "imu"
)

/**
 * The customer's own words: their text up to the first forwarded mail. What a forwarded mail says was
 * written by someone else (a phishing mail forwarded with "is this from you?"): a link only it holds
 * must not go out under the company's name without a person looking at it.
 */
export const ownWords = (text: string): string => {
  const start = text.search(forwardedStart)
  return start < 0 ? text : text.slice(0, start)
}

/**
 * A phone number, a bank account or a wallet is how a scam the model was steered into goes on
 * outside the mail, and a server's address (a DNS server, a host to allow) is a link without its
 * scheme: the reason for one in `text` (the answer, its links and addresses already judged) that
 * `allowed` (the passages and the customer's own words, lower-cased) does not hold.
 */
const unknownNumber = (text: string, allowed: string): string | undefined => {
  const ips = ipAddressesIn(text)
  const knownIps = ips.length === 0 ? [] : ipAddressesIn(allowed)
  const ip = ips.find((candidate) => !knownIps.includes(candidate))
  if (ip !== undefined) return `it holds an IP address that no help passage or mail of the customer's holds (${ip})`
  // The customer's side (up to a megabyte) is read only when the answer holds something to look up.
  const phones = phoneNumbersIn(text)
  const known = phones.length === 0 ? [] : phoneNumbersIn(allowed).map((number) => number.digits)
  const phone = phones.find((number) => !known.some((digits) => sameNumber(digits, number.digits)))
  if (phone !== undefined) return `it holds a phone number that no help passage or mail of the customer's holds (${phone.written.slice(0, 40)})`
  const upper = text.toUpperCase()
  const ibans = ibansIn(upper)
  const knownIbans = ibans.length === 0 ? [] : ibansIn(allowed.toUpperCase())
  const iban = ibans.find((candidate) => !knownIbans.includes(candidate))
  if (iban !== undefined) return `it holds a bank account (IBAN) that no help passage or mail of the customer's holds (${iban})`
  // An IBAN written without spaces is a long code too; it was judged above.
  const code = codesIn(upper.replace(ibanLike, " ")).find((candidate) => !allowed.includes(candidate))
  if (code !== undefined) {
    return `it holds a code (a wallet address, a key, a reference) that no help passage or mail of the customer's holds (${code.slice(0, 70)})`
  }
  return undefined
}

/**
 * Why an answer needs a person, or undefined when it may be sent. A link, an address, a sum of
 * money, a phone number, an IP address, an IBAN or a long code that neither the help passages nor the customer's
 * own words hold was made up by the model, or put into its mouth by a prompt injection: either way
 * it must not go out under the company's name. Nor may money be promised on the customer's word, nor
 * a mail or a link called genuine or safe (Vouching.ts), nor a change to an account claimed or
 * promised (Deeds.ts).
 */
export const needsHuman = (answer: AnswerContext): string | undefined => {
  if (answer.unshown !== undefined && answer.unshown.length > 0) {
    const words = answer.unshown.slice(0, 5).map((word) => `"${word}"`).join(", ")
    return `the mail's plain-text part says what its HTML does not show (${words}, …), where instructions for the model can hide: the answer was written from what the HTML shows`
  }
  if (answer.partsUnchecked === true) {
    return `the mail's text or HTML part is over ${eventLimits.textBytes / 1000} KB and was cut, so its plain-text part (what the model reads) could not be checked against what its HTML shows`
  }
  if (answer.truncated) return "the model stopped at LLM_MAX_TOKENS: the answer is cut off"
  if (answer.text.length > answer.maxChars) {
    return `the answer is ${answer.text.length} characters long, more than REPLY_MAX_CHARS=${answer.maxChars}`
  }
  const text = withoutTicketTokens(answer.text)
  if (asksForSecret(text)) return "it asks the customer for a password, a card's details or a code, which support never asks for by mail"
  const vouching = vouchingIn(text, answer.material)
  if (vouching !== undefined) return `it vouches for a mail, a link or a sender ("${vouching.slice(0, 100)}"), which only a person can judge`
  const allowed = [...answer.material, ...answer.customerTexts].join("\n").toLowerCase()
  const { links, addresses: mails } = linksIn(text)
  const link = links.find((candidate) => !allowed.includes(candidate))
  if (link !== undefined) return `it holds a link that no help passage or mail of the customer's holds (${link.slice(0, 100)})`
  const mail = mails.find((candidate) => !allowed.includes(candidate) && !isOwnAddress(candidate, answer.own))
  if (mail !== undefined) return "it holds an email address that no help passage or mail of the customer's holds"
  // `allowed` holds the passages too, whose amounts pass anyway: no second copy of the customer's text.
  const material = answer.material.join("\n")
  const money = unknownMoney(text, material, allowed)
  if (money !== undefined) return money
  // A promise without a figure last: an invented number or code in the same answer says more.
  const number = unknownNumber(withoutAmounts(text.replace(urls, " ").replace(addresses, " ")), allowed)
  if (number !== undefined) return number
  const promise = unbackedPromise(text, material)
  if (promise !== undefined) return promise
  const deed = deedsIn(text, answer.material)
  return deed === undefined
    ? undefined
    : `it says an account, a subscription or an order was or will be changed ("${deed.trim().slice(0, 100)}"), which only a person can do`
}


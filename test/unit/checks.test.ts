import { describe, expect, it } from "vitest"
import type { AnswerContext } from "../../src/replies/Checks.js"
import { linksIn, needsHuman, ownWords } from "../../src/replies/Checks.js"

const own = { address: "support@example.com", aliases: ["billing@example.com"] }

const answer = (text: string, overrides: Partial<AnswerContext> = {}): AnswerContext => ({
  text,
  material: ["Reset your password at https://example.com/reset or write to security@example.com."],
  customerTexts: ["My order https://shop.customer.test/orders/17 never came."],
  own,
  maxChars: 4000,
  truncated: false,
  ...overrides
})

describe("linksIn", () => {
  it("reads file names and abbreviations as no links", () => {
    expect(linksIn("Run node.js with config.json, e.g. twice.").links).toEqual([])
  })

  it("finds links with and without a scheme, and addresses, once each", () => {
    expect(linksIn("See https://a.test/x, www.b.test and evil.com/login. Mail ada@customer.test.")).toEqual({
      links: ["a.test/x", "www.b.test", "evil.com/login"],
      addresses: ["ada@customer.test"]
    })
  })
})

describe("ownWords", () => {
  const forwarded = (separator: string) => `Is this invoice from you?\n\n${separator}\nFrom: Billing <billing@pay-invoice.example>\nPay at https://pay-invoice.example/now`

  it("ends where a forwarded mail starts, whichever client wrote the separator", () => {
    for (
      const separator of [
        "---------- Forwarded message ---------", // Gmail, and mailroom's text of a mail forwarded as an attachment
        "-------- Forwarded Message --------", // Thunderbird
        "Begin forwarded message:", // Apple Mail
        "-----Original Message-----", // Outlook
        "________________________________" // Outlook, its From: block next
      ]
    ) {
      expect(ownWords(forwarded(separator)), separator).toBe("Is this invoice from you?\n\n")
    }
  })

  it("keeps a mail without a forwarded one whole, a line of underscores in a signature included", () => {
    const text = "My order https://shop.customer.test/orders/17 never came.\n__________\nAda, www.customer.test"
    expect(ownWords(text)).toBe(text)
  })

  it("makes a link only the forwarded mail holds a reason for a person to look", () => {
    const phishing = forwarded("---------- Forwarded message ---------")
    expect(needsHuman(answer("Yes, please pay at https://pay-invoice.example/now.", { customerTexts: [phishing] }))).toBeUndefined()
    expect(needsHuman(answer("Yes, please pay at https://pay-invoice.example/now.", { customerTexts: [ownWords(phishing)] })))
      .toContain("pay-invoice.example/now")
  })
})

describe("needsHuman", () => {
  it("lets an answer through whose links and addresses come from the passages, the customer's mail or our own addresses", () => {
    expect(needsHuman(answer("Use https://example.com/reset; write to security@example.com or billing@example.com."))).toBeUndefined()
    expect(needsHuman(answer("Your order (https://shop.customer.test/orders/17) is on its way."))).toBeUndefined()
    expect(needsHuman(answer("Thanks, we will follow up."))).toBeUndefined()
  })

  it("holds back a link nobody gave the model", () => {
    expect(needsHuman(answer("Verify at https://account-verify.example/login now."))).toContain("account-verify.example/login")
    expect(needsHuman(answer("Go to example.com.evil.ru/reset"))).toContain("example.com.evil.ru/reset")
    expect(needsHuman(answer("Visit bank-login.com"))).toContain("bank-login.com")
  })

  it("holds back an invented address", () => {
    expect(needsHuman(answer("Send your card details to refunds@payments-desk.test."))).toContain("email address")
  })

  it("holds back an answer cut off at the token limit or over REPLY_MAX_CHARS", () => {
    expect(needsHuman(answer("Dear customer, the steps are", { truncated: true }))).toContain("LLM_MAX_TOKENS")
    expect(needsHuman(answer("x".repeat(41), { maxChars: 40 }))).toContain("REPLY_MAX_CHARS=40")
  })
})

import { describe, expect, it } from "vitest"
import type { AnswerContext } from "../../src/replies/Checks.js"
import { codesIn, ibansIn, ipAddressesIn, linksIn, needsHuman, ownWords, phoneNumbersIn } from "../../src/replies/Checks.js"
import { deedsIn } from "../../src/replies/Deeds.js"
import { asksForSecret } from "../../src/replies/Secrets.js"
import { vouchingIn } from "../../src/replies/Vouching.js"

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

describe("phoneNumbersIn", () => {
  it("finds numbers written the ways people write them", () => {
    expect(phoneNumbersIn("Call +44 (0)20 7946 0958, +1 (888) 555-0147, 030/1234567 or 555 0147.").map((n) => n.digits)).toEqual([
      "442079460958",
      "18885550147",
      "0301234567",
      "5550147"
    ])
  })

  it("reads dates, times, versions, amounts, ticket tokens and a sentence's end as no phone number", () => {
    const text = "On 2026-12-05, 05.12.2026 or 12/05/2026 (2019-2026) at 10:30-12:00, version 2.10.2 costs €1,299.00 " +
      "for orders 17, 18 and 19 [#012345678901]. Call 0800 123 456. 2 items left."
    expect(phoneNumbersIn(text).map((n) => n.written)).toEqual(["0800 123 456"])
  })
})

describe("ipAddressesIn", () => {
  it("finds IPv4 addresses, at a sentence's end too, and leaves versions, builds and numbers out of range alone", () => {
    expect(ipAddressesIn("Set DNS to 203.0.113.7. Allow 10.0.0.1, not 10.0.0.256 or 1.2.3.4.5, version 2.10.2 or build 10.0.19045.2965."))
      .toEqual(["203.0.113.7", "10.0.0.1"])
    expect(phoneNumbersIn("our server 203.0.113.7 answers; 192.168.100.254 too")).toEqual([])
  })
})

describe("ibansIn", () => {
  it("finds valid IBANs, spaced or not, and leaves out what fails the check digits", () => {
    expect(ibansIn("Pay DE89 3704 0044 0532 0130 00 or GB82WEST12345698765432, not DE89 3704 0044 0532 0130 01.")).toEqual([
      "DE89370400440532013000",
      "GB82WEST12345698765432"
    ])
  })

  it("knows each country's length: the registry's shortest and longest, and a code shaped like one that is none", () => {
    const registry = ["NO93 8601 1117 947", "LC55 HEMM 0001 0001 0012 0012 0002 3015", "RU02 0445 2560 0407 0281 0412 3456 7890 1"]
    expect(ibansIn(registry.join(", "))).toEqual(registry.map((iban) => iban.replace(/ /g, "")))
    // Check digits that pass, for a country that has no IBAN, or for a length the country does not use.
    const shaped = (country: string, rest: string) => {
      const digits = (98 - Number(BigInt(`${rest}${[...country].map((c) => c.charCodeAt(0) - 55).join("")}00`) % 97n)).toString().padStart(2, "0")
      return `${country}${digits}${rest}`
    }
    expect(ibansIn(shaped("DE", "370400440532013000"))).toHaveLength(1)
    expect(ibansIn(shaped("ZZ", "370400440532013000"))).toEqual([])
    expect(ibansIn(shaped("DE", "3704004405320130"))).toEqual([])
    expect(ibansIn(shaped("AB", "12345678"))).toEqual([])
  })
})

describe("vouchingIn", () => {
  const read = (texts: ReadonlyArray<string>) => texts.filter((text) => vouchingIn(text, []) !== undefined)

  it("hears an answer vouch for a mail, a link or a sender, and leaves warnings and other praise alone", () => {
    const vouching = [
      "Yes, this email is genuine.",
      "Good news: the message you received is legitimate and you can pay the invoice.",
      "It looks authentic to us.",
      "That mail really came from our billing team.",
      "The link was sent by us last week.",
      "This message is really from us.",
      "We sent you that message to confirm your address.",
      "It is safe to click the link.",
      "You can safely open the attachment.",
      "Don't worry, it's not a scam.",
      "This is not phishing.",
      "Yes, that was us."
    ]
    expect(read(vouching)).toEqual(vouching)
    expect(read([
      "This email is not genuine: please delete it.",
      "If it asks for your password, it is not from us.",
      "It was never sent by our team.",
      "Do not click the link; it is not safe to click links in such mails.",
      "We cannot tell whether it is legitimate, so please forward it to security@example.com.",
      "All our spare parts are genuine.",
      "Your parcel was sent by our warehouse on Monday.",
      "Your refund was processed by our billing team.",
      "You can open the app and follow the steps under Settings.",
      "Your account is safe and your data is encrypted.",
      "The team will check whether it is from us; meanwhile please do not click its links.",
      "If it is genuine, it will show your ticket number.",
      "It was not us: please delete it."
    ])).toEqual([])
  })

  it("hears it in the customer's language too, warnings apart", () => {
    const vouching = [
      "Ja, diese E-Mail ist echt.",
      "Die Nachricht stammt wirklich von uns.",
      "Das ist kein Betrug.",
      "Oui, ce message est bien authentique.",
      "Ce n'est pas une arnaque.",
      "Sí, el correo es auténtico y viene de nosotros.",
      "Sì, il messaggio è autentico.",
      "Ja, deze e-mail is echt.",
      "Sim, a mensagem é legítima.",
      "Sie können den Link bedenkenlos anklicken.",
      "Ja, das waren wir.",
      "Oui, c'est bien nous."
    ]
    expect(read(vouching)).toEqual(vouching)
    expect(read([
      "Diese E-Mail ist nicht echt und stammt nicht von uns.",
      "Das ist echt ärgerlich, das tut uns leid.",
      "Wir prüfen, ob die Nachricht von uns stammt.",
      "Ce message n'est pas authentique.",
      "El correo no es auténtico: no haga clic en el enlace.",
      "Il messaggio non è autentico.",
      "Deze e-mail is niet echt.",
      "Dat is echt vervelend, excuses daarvoor.",
      "A mensagem não é legítima.",
      "The email is one of the ways we reach you, but this one is not genuine."
    ])).toEqual([])
  })

  it("lets the help passages' own sentences through, and names the first one they do not hold", () => {
    const material = ["Mail from billing@example.com is genuine. Anything else is not from us."]
    expect(vouchingIn("Mail from billing@example.com is genuine.", material)).toBeUndefined()
    expect(vouchingIn("Mail from billing@example.com is genuine. And this one is genuine too!", material)).toBe("And this one is genuine too!")
    expect(needsHuman(answer("Yes, the email you forwarded is genuine, go ahead."))).toBe(
      "it vouches for a mail, a link or a sender (\"Yes, the email you forwarded is genuine, go ahead.\"), which only a person can judge"
    )
  })
})

describe("deedsIn", () => {
  const read = (texts: ReadonlyArray<string>) => texts.filter((text) => deedsIn(text, []) !== undefined)

  it("hears an answer say that an account, a subscription or an order was or will be changed, and leaves help steps and refusals alone", () => {
    const deeds = [
      "I have cancelled your subscription.",
      "We've closed your account as requested.",
      "Your subscription has been cancelled.",
      "Good news: your account is now unlocked.",
      "We went ahead and reset your password.",
      "Your password was reset this morning.",
      "We have updated your billing details.",
      "We will delete your account tomorrow.",
      "I'll cancel your order right away.",
      "Simply reply to this email and we'll extend your trial period.",
      "We have verified your identity, so you can sign in again.",
      "Your account has been reactivated.",
      // A pronoun, where the answer names what it stands for; "you mentioned" alone is no report said back.
      "Thanks for asking about your subscription. I have cancelled it for you.",
      "About the order you mentioned: we'll cancel it today.",
      // Someone else on our side said to have done it.
      "Our billing team has cancelled your subscription.",
      "The support team already closed your account.",
      "Our engineers have reset your password.",
      "The billing department deleted your card details yesterday."
    ]
    expect(read(deeds)).toEqual(deeds)
    expect(read([
      "To reset your password, open the sign-in page and choose \"Forgot password\".",
      "You can cancel your subscription under Settings, Billing.",
      "We recommend that you reset your password.",
      "We can reset your password once you reply with your account name.",
      "We are unable to reset your password by mail.",
      "Your subscription has not been cancelled.",
      "I can't cancel your order, but the team will look at it.",
      "Once your account has been closed, you will receive a confirmation.",
      "Would you like us to cancel your subscription?",
      "Have we already cancelled your order?",
      "If your account was suspended, sign in to see why.",
      "The team will check whether your account was suspended.",
      "A member of our team will verify your identity and reset two-factor authentication.",
      "We have received your request to cancel your subscription.",
      "We've passed your request to close your account to the team.",
      "We'll update you as soon as we know more.",
      "I have changed my password.",
      "Make sure your billing details are updated.",
      "I'm sorry to hear your account was suspended; the team will look into it.",
      "You mentioned that your order was cancelled twice; the team will look at both.",
      "I have updated it.",
      "Your order is late. I have checked it and it ships on Monday.",
      "Your account is locked after five failed sign-ins.",
      "We have updated our terms of service.",
      "Once our team has closed your account, you will receive a confirmation.",
      "The team has received your request to close your account.",
      "Our team has not cancelled your subscription.",
      "The team will reset your password once you confirm your identity.",
      "The team reset passwords every quarter."
    ])).toEqual([])
  })

  it("hears it in the customer's language too, refusals and help steps apart", () => {
    const deeds = [
      "Ich habe Ihr Abonnement gekündigt.",
      "Ihr Konto wurde gelöscht.",
      "Wir werden Ihr Konto morgen löschen.",
      "J'ai résilié votre abonnement.",
      "Votre compte a été supprimé.",
      "Nous allons supprimer votre compte.",
      "He cancelado su suscripción.",
      "Su cuenta ha sido eliminada.",
      "Eliminaremos su cuenta mañana.",
      "Ho annullato il tuo abbonamento.",
      "Il tuo account è stato eliminato.",
      "Ik heb uw abonnement opgezegd.",
      "We zullen uw account verwijderen.",
      "Cancelei a sua assinatura.",
      "A sua conta foi excluída."
    ]
    expect(read(deeds)).toEqual(deeds)
    expect(read([
      "Um Ihr Passwort zurückzusetzen, öffnen Sie die Anmeldeseite.",
      "Ihr Konto wurde nicht gelöscht.",
      "Sobald Ihr Konto gelöscht wurde, erhalten Sie eine Bestätigung.",
      "Es tut uns leid, dass Ihr Konto gesperrt wurde.",
      "Als je je wachtwoord hebt gewijzigd, log dan opnieuw in.",
      "Pour réinitialiser votre mot de passe, ouvrez la page de connexion.",
      "Votre compte n'a pas été supprimé.",
      "Para restablecer su contraseña, abra la página de inicio de sesión.",
      "Su cuenta no ha sido eliminada.",
      "Il tuo account non è stato eliminato.",
      "Uw account is niet verwijderd.",
      "A sua conta não foi excluída.",
      // The deed and the account in different clauses, or far apart: about something else.
      "Wir haben unsere Bedingungen geändert, und Ihr Abo läuft weiter wie bisher.",
      "Ihr Konto ist bei uns seit vielen Jahren in guten Händen und heute wurden nur unsere Preise geändert."
    ])).toEqual([])
  })

  it("hears it on a pronoun, or with no subject, in the customer's language, where the answer names the thing", () => {
    const about = {
      de: "Danke für Ihre Nachricht zu Ihrem Abonnement.",
      fr: "Merci pour votre message au sujet de votre abonnement.",
      es: "Gracias por su mensaje sobre su suscripción.",
      it: "Grazie per il messaggio sul tuo abbonamento.",
      nl: "Dank voor uw bericht over uw abonnement.",
      pt: "Obrigado pela mensagem sobre a sua assinatura."
    }
    const deeds: Array<[keyof typeof about, string]> = [
      ["de", "Ich habe es für Sie gekündigt."],
      ["de", "Wir werden es morgen löschen."],
      ["de", "Es wurde heute storniert."],
      ["fr", "Je l'ai annulé ce matin."],
      ["fr", "Nous l’avons bien résilié."],
      ["fr", "Je vais l'annuler aujourd'hui."],
      ["fr", "Il a été supprimé."],
      ["es", "Ya lo he cancelado."],
      ["es", "La cancelé esta mañana."],
      ["es", "Vamos a cancelarla hoy."],
      ["es", "Ya ha sido cancelada."],
      ["it", "L'ho annullato oggi."],
      ["it", "Lo annulleremo domani."],
      ["it", "È stato eliminato."],
      ["nl", "Ik heb het voor u opgezegd."],
      ["nl", "We zullen het morgen verwijderen."],
      ["nl", "Het is inmiddels opgezegd."],
      ["pt", "Já a cancelei."],
      ["pt", "Cancelei-a hoje."],
      ["pt", "Foi cancelada hoje."]
    ]
    for (const [language, sentence] of deeds) {
      expect(deedsIn(`${about[language]} ${sentence}`, []), sentence).toBe(sentence)
      // Said of nothing the answer names, a pronoun is no deed on the customer's things.
      expect(deedsIn(sentence, []), sentence).toBeUndefined()
    }
    const notDeeds: Array<[keyof typeof about, string]> = [
      ["de", "Ich habe es nicht gekündigt."],
      ["de", "Sobald es gekündigt wurde, erhalten Sie eine Bestätigung."],
      ["de", "Ich habe es mir angesehen."],
      ["fr", "Je ne l'ai pas annulé."],
      ["fr", "Je l'ai transmis à l'équipe."],
      ["es", "No lo he cancelado."],
      ["es", "Lo he revisado con el equipo."],
      ["it", "Non l'ho annullato."],
      ["nl", "Ik heb het niet opgezegd."],
      ["nl", "Ik heb het doorgestuurd naar het team."],
      ["pt", "Não o cancelei."],
      ["pt", "Já o encaminhei à equipa."]
    ]
    for (const [language, sentence] of notDeeds) expect(deedsIn(`${about[language]} ${sentence}`, []), sentence).toBeUndefined()
  })

  it("lets the help passages' own sentences through, and makes the answer a draft", () => {
    const material = ["Your subscription is cancelled at the end of the billing period."]
    expect(deedsIn("Your subscription is cancelled at the end of the billing period.", material)).toBeUndefined()
    expect(needsHuman(answer("Thanks for writing. Your account has been closed and your data deleted.")))
      .toBe("it says an account, a subscription or an order was or will be changed (\"Your account has been closed and your data deleted.\"), which only a person can do")
  })
})

describe("asksForSecret", () => {
  const read = (texts: ReadonlyArray<string>) => texts.filter((text) => asksForSecret(text))

  it("hears a request for a password, a card's details or a code, and leaves warnings and help steps alone", () => {
    const requests = [
      "To verify your account, please reply with your password.",
      "Send us the card number and the CVV so we can check the charge.",
      "Could you share the 6-digit verification code we just texted you?",
      "Please provide your wallet's recovery phrase.",
      "Thanks! Mail us your PIN and we will unlock it.",
      "You can also send us the verification code by email."
    ]
    expect(read(requests)).toEqual(requests)
    expect(read([
      "We will never ask you to send your password by mail.",
      "Don't share your one-time code with anyone.",
      "Reset your password at https://example.com/reset, then sign in with the new password.",
      "Enter the verification code from the app; your credit card was charged once.",
      "Send us the order number and we will look.",
      // The same verbs give: we send the code, the customer sends nothing.
      "We will send you a verification code by SMS.",
      "We'll text a new verification code to your phone.",
      "I'll email you a one-time password.",
      "The app will text you a verification code."
    ])).toEqual([])
  })

  it("hears it in the customer's language too: the model answers in it", () => {
    const requests = [
      "Bitte senden Sie uns Ihr Passwort, damit wir das Konto prüfen können.",
      "Teilen Sie uns bitte den Bestätigungscode aus der SMS mit.",
      "Merci de nous envoyer votre mot de passe pour vérifier le compte.",
      "Por favor, envíenos el número de la tarjeta y el código de seguridad.",
      "Ci invii la password e il codice di verifica, per favore.",
      "Stuur ons uw wachtwoord, dan controleren we het account.",
      "Por favor, envie a sua senha para confirmarmos a conta."
    ]
    expect(read(requests)).toEqual(requests)
    expect(read([
      "Wir werden Sie niemals bitten, Ihr Passwort per Mail zu senden.",
      "Geben Sie den Bestätigungscode aus der App ein.",
      "Ne partagez jamais votre mot de passe.",
      "Nunca comparta su contraseña con nadie.",
      "Non condivida mai la password.",
      "Deel uw wachtwoord nooit met iemand.",
      "Nunca compartilhe a sua senha.",
      "It is mandatory to set a password in the environment settings."
    ])).toEqual([])
  })

  it("makes the answer a draft", () => {
    expect(needsHuman(answer("To keep your account, reply with your password today."))).toBe(
      "it asks the customer for a password, a card's details or a code, which support never asks for by mail"
    )
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

  it("knows the separators as the clients write them in the languages the checks read", () => {
    const localised = (separator: string, from: string) => `Ist diese Rechnung von Ihnen?\n\n${separator}\n${from}: Billing <billing@pay-invoice.example>\nhttps://pay-invoice.example/now`
    for (
      const [separator, from] of [
        ["---------- Weitergeleitete Nachricht ---------", "Von"], // Gmail, German
        ["-----Ursprüngliche Nachricht-----", "Von"], // Outlook, German
        ["Anfang der weitergeleiteten Nachricht:", "Von"], // Apple Mail, German
        ["-------- Message transféré --------", "De"], // Thunderbird, French
        ["Début du message réexpédié :", "De"], // Apple Mail, French
        ["---------- Mensaje reenviado ---------", "De"], // Gmail, Spanish
        ["-----Messaggio originale-----", "Da"], // Outlook, Italian
        ["---------- Doorgestuurd bericht ---------", "Van"], // Gmail, Dutch
        ["---------- Mensagem encaminhada ---------", "De"], // Gmail, Portuguese
        ["________________________________", "Von"] // Outlook, German, its From: block next
      ] as const
    ) {
      expect(ownWords(localised(separator, from)), separator).toBe("Ist diese Rechnung von Ihnen?\n\n")
    }
  })

  it("reads a megabyte of dashes and underscores in one pass", () => {
    const text = `${"-".repeat(500_000)}\n${"_".repeat(500_000)}\n${"- ".repeat(200_000)}`
    expect(ownWords(text)).toBe(text)
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

  it("lets a phone number through that the passages or the customer's own words hold, however it is written", () => {
    const material = ["Our hotline: +44 20 7946 0958 (weekdays). Bank: DE89 3704 0044 0532 0130 00."]
    expect(needsHuman(answer("Call us on 020 7946 0958 or +44 (0)20 7946 0958.", { material }))).toBeUndefined()
    expect(needsHuman(answer("Transfer it to DE89370400440532013000.", { material }))).toBeUndefined()
    // Malta's IBANs are 31 characters: written without spaces, a known one is no unknown code either.
    const malta = ["Bank: MT84 MALT 0110 0001 2345 MTLC AST0 01S."]
    expect(needsHuman(answer("Transfer it to MT84MALT011000012345MTLCAST001S.", { material: malta }))).toBeUndefined()
    expect(needsHuman(answer("We will call you back on 555-0147.", { customerTexts: ["Call me back: 555 0147"] }))).toBeUndefined()
    expect(needsHuman(answer("Your order 2026-12-05 ships by 10:30, version 2.10.2."))).toBeUndefined()
  })

  it("holds back an IP address nobody gave the model, as such and not as a phone number", () => {
    expect(needsHuman(answer("Set your DNS server to 198.51.100.23 and try again."))).toBe(
      "it holds an IP address that no help passage or mail of the customer's holds (198.51.100.23)"
    )
    expect(needsHuman(answer("Please allow 203.0.113.7 in your firewall.", { material: ["Our mail server is 203.0.113.7."] }))).toBeUndefined()
    expect(needsHuman(answer("We see requests from 192.0.2.10.", { customerTexts: ["my IP is 192.0.2.10"] }))).toBeUndefined()
    expect(needsHuman(answer("We see requests from 192.0.2.1.", { customerTexts: ["my IP is 192.0.2.10"] }))).toContain("IP address that no help passage or mail of the customer's holds (192.0.2.1)")
  })

  it("holds back a phone number or an IBAN nobody gave the model, or that only a forwarded mail holds", () => {
    expect(needsHuman(answer("Please call +1 (888) 555-0147 to cancel the renewal."))).toContain("holds (+1 (888) 555-0147)")
    // A country code in front of a number we know is another number when it is more than a country code.
    expect(needsHuman(answer("Call 1234 020 7946 0958.", { material: ["Call 020 7946 0958."] }))).toContain("phone number")
    const scam = "Is this from you?\n\n---------- Forwarded message ---------\nFrom: Renewals <billing@renew.example>\n" +
      "Your subscription renews today. To cancel call +1 888 555 0147. Pay to GB82 WEST 1234 5698 7654 32."
    expect(needsHuman(answer("Yes, call +1 888 555 0147.", { customerTexts: [ownWords(scam)] }))).toContain("phone number")
    expect(needsHuman(answer("Yes, please pay to GB82 WEST 1234 5698 7654 32.", { customerTexts: [ownWords(scam)] })))
      .toContain("IBAN) that no help passage or mail of the customer's holds (GB82WEST12345698765432)")
    expect(needsHuman(answer("Yes, call +1 888 555 0147.", { customerTexts: [scam] }))).toBeUndefined()
  })

  it("holds back a wallet address or another long code nobody gave the model, and lets one through the customer gave", () => {
    const btc = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
    const eth = "0x71C7656EC7ab88b098defB751B7401B5f6d8976F"
    expect(codesIn(`Send it to ${btc} or ${eth}; the Fortbildungsveranstaltungsteilnehmer and v2.10.2 are no codes.`)).toEqual([
      btc,
      eth.toLowerCase()
    ])
    expect(needsHuman(answer(`Yes, the refund fee goes to ${btc}.`))).toContain(`code (a wallet address, a key, a reference) that no help passage or mail of the customer's holds (${btc})`)
    expect(needsHuman(answer(`Your reference ${eth} is noted.`, { customerTexts: [`My reference: ${eth}`] }))).toBeUndefined()
  })

  it("reads a megabyte of the customer's text in one pass, whatever it repeats", () => {
    // Patterns that backtrack over a long run (an address's local part before an @ that never comes)
    // took minutes on a 900 KB subject: each of these returns at once, or the test times out.
    for (const filler of ["A", "1 ", "+1 ", "12-12-", "AB12 ", "x.y", "123 ", "1,234.5", "$1 ", "EUR", "1.", "10.0.0.", "255.255."]) {
      const customerTexts = [filler.repeat(Math.ceil(1_000_000 / filler.length))]
      expect(needsHuman(answer("Thanks, we will follow up on +1 (888) 555-0147.", { customerTexts })), filler).toContain("phone number")
      expect(needsHuman(answer("Thanks, the $17.25 are noted.", { customerTexts })), filler).toContain("amount of money")
    }
  })

  it("reads a ticket token as ours, never as a bank account", () => {
    // Tokens are 12 random hex digits: shaped like an IBAN of a country with hex letters (Belgium, Germany), one in 97 passes the check digits.
    const candidates = Array.from({ length: 20_000 }, (_, i) => `${i % 2 ? "de" : "be"}${(10 + (i % 90)).toString()}${i.toString(16).padStart(8, "0")}`)
    expect(candidates.filter((token) => ibansIn(`[#${token}]`.toUpperCase()).length > 0)).toEqual([])
    for (const token of candidates.slice(0, 200)) {
      expect(needsHuman(answer(`Thanks, we are on it: ticket [#${token}].`)), token).toBeUndefined()
      expect(needsHuman(answer(`Thanks, we are on it: ticket #${token.toUpperCase()}.`)), token).toBeUndefined()
    }
  })

  it("holds back an answer cut off at the token limit or over REPLY_MAX_CHARS", () => {
    expect(needsHuman(answer("Dear customer, the steps are", { truncated: true }))).toContain("LLM_MAX_TOKENS")
    expect(needsHuman(answer("x".repeat(41), { maxChars: 40 }))).toContain("REPLY_MAX_CHARS=40")
  })
})

/**
 * A request for a secret: a password, a card's number or code, a one-time code, a wallet's recovery
 * phrase. A support team never asks for one by mail; a phishing mail the customer forwards does,
 * and a model may echo it, in the customer's language. Read in English, German, French, Spanish,
 * Italian, Dutch and Portuguese, as the money check reads promises. Every gap is bounded, so a
 * sentence is read in one pass.
 */
import { anyWord, END, sentencesOf, START } from "./Sentences.js"

/**
 * Asking verbs, in the forms an answer asks with ("senden Sie", "envoyez", "envíenos"). In English
 * the same verb gives ("we will send you a verification code", "we'll text a code to your phone"):
 * with "we" or "I" before it, or "you" after it, it is no request.
 */
const asking = [
  String.raw`(?<!\b(?:we|i)(?:'ll|'d|\s+will|\s+would|\s+can|\s+could|\s+shall|\s+may|\s+also|\s+then|\s+just)*\s+)(?:send|reply with|respond with|provide|share|give|tell|include|e-?mail|mail|text)(?!\s+you\b)`,
  String.raw`senden sie|schicken sie|schick(?:e|t)? (?:mir|uns)|teilen sie (?:mir|uns)|nennen sie (?:mir|uns)|geben sie (?:mir|uns)|übermitteln sie|antworten sie mit|per (?:e-?mail|mail)`,
  String.raw`envoyez|envoyer|envoie|transmettez|transmettre|communiquez|communiquer|partagez|partager|indiquez-nous|donnez-nous|répondez avec|par (?:e-?mail|courriel)`,
  String.raw`envíe|envie|envía|envíenos|mande|mándenos|comparta|compártanos|proporcione|proporciónenos|facilite|facilítenos|indíquenos|díganos|dénos|responda con|por (?:correo|e-?mail)`,
  String.raw`invii|inviate|inviaci|mandi|mandate|mandaci|condivida|condividete|fornisca|fornite|comunichi|comunicate|ci dica|ci indichi|risponda con|per (?:e-?mail|posta)`,
  String.raw`stuur|stuurt|deel|deelt|geef ons|verstrek|mail ons|antwoord met`,
  String.raw`enviar|mandar|compartilhe|partilhe|forneça|informe-nos|diga-nos|responda com|por (?:e-?mail|correio)`
]

/** The secrets, whole words, a plural allowed. */
const secrets = [
  String.raw`password|passcode|PIN|CVV|CVC|security code|card number|credit card details|one[- ]time (?:code|password)|verification code|2FA code|OTP|seed phrase|recovery phrase|private key`,
  String.raw`passwort|kennwort|kartennummer|prüfnummer|sicherheitscode|bestätigungscode|verifizierungscode|einmalcode|TAN|wiederherstellungsphrase|privaten schlüssel`,
  String.raw`mot de passe|code PIN|numéro de (?:la )?carte|cryptogramme|code de sécurité|code de vérification|code à usage unique|phrase de récupération|clé privée`,
  String.raw`contraseña|número de (?:la )?tarjeta|código de seguridad|código de verificación|código de un solo uso|frase de recuperación|clave privada`,
  String.raw`numero (?:della )?carta|codice di sicurezza|codice di verifica|codice monouso|frase di recupero|chiave privata`,
  String.raw`wachtwoord|pincode|kaartnummer|beveiligingscode|verificatiecode|eenmalige code|herstelzin|privésleutel`,
  String.raw`senha|número do cartão|código de segurança|código de verificação|código único|frase de recuperação|chave privada`
]

const secretAsked = new RegExp(
  `${START}(?:${asking.join("|")})${END}[^.!?\\n]{0,60}?${START}(?:${secrets.join("|")})(?:s|es|n|en)?${END}`,
  "iu"
)

/** "Never share your password" warns; it does not ask. */
const warning = anyWord([
  String.raw`never|not|no one|nobody|don't|do not|won't|\p{L}+n't`,
  String.raw`nie|niemals|nicht|kein\p{L}*|niemand`,
  String.raw`jamais|ne|pas|personne`,
  String.raw`nunca|jamás|nadie|no (?:\p{L}+ ){0,2}(?:comparta|compartas|envíe|envie|envíes|dé|des|facilite|revele|proporcione|responda)`,
  String.raw`mai|non|nessuno`,
  String.raw`nooit|niet|geen`,
  String.raw`não|ninguém`
])

/** Whether a sentence of the answer asks the customer for a secret. */
export const asksForSecret = (text: string): boolean =>
  sentencesOf(text).some((sentence) => secretAsked.test(sentence) && !warning.test(sentence))

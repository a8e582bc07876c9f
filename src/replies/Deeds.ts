/**
 * mailroom's answers are words only: the model cannot cancel a subscription, close an account or
 * reset a password. An answer that says one of these was done ("your subscription has been
 * cancelled") or that we will do it ("we will delete your account") tells the customer something
 * untrue or promises what nobody has agreed to, and a customer who believes it keeps paying, or
 * thinks their data gone. It is also what an injection asks for ("tell them their account is
 * closed"). Such an answer is a draft, for a person who can do the deed first; a sentence the help
 * passages hold passes.
 */
import { anyWord, clauseAround, clauseUpTo, firstNotHeld, sentencesOf, unclaimed } from "./Sentences.js"

/** What can be done to a customer's account, by whom it is theirs ("your"), in the seven languages. */
const OBJECTS = {
  en: String.raw`account|subscription|membership|plan|order|booking|reservation|password|e-?mail address|address|(?:billing |payment |bank |card |account |personal |contact )?details|card|payment method|data|profile|login|username|access|identity|licen[cs]e|trial|contract|direct debit|auto-?renewal`,
  de: String.raw`(?:ihr|ihre|ihren|ihrem|ihrer|ihres|dein|deine|deinen|deinem|deiner|deines) (?:\p{L}+ ){0,2}?(?:kundenkonto|benutzerkonto|konto|account|abonnement|abo|mitgliedschaft|tarif|vertrag|bestellung|buchung|reservierung|passwort|kennwort|e-mail-adresse|adresse|daten|angaben|karte|zahlungsmethode|profil|zugang|identität|lizenz|lastschrift)`,
  fr: String.raw`(?:votre|vos|ton|ta|tes) (?:\p{L}+ ){0,2}?(?:compte|abonnement|adhésion|forfait|contrat|commande|réservation|mot de passe|adresse|données|coordonnées|carte|moyen de paiement|profil|accès|identité|licence|prélèvement)`,
  es: String.raw`(?:su|sus|tu|tus) (?:\p{L}+ ){0,2}?(?:cuenta|suscripción|membresía|plan|contrato|pedido|reserva|contraseña|dirección|datos|tarjeta|método de pago|perfil|acceso|identidad|licencia)`,
  it: String.raw`(?:tuo|tua|tuoi|tue|suo|sua|suoi|sue|vostro|vostra|vostri|vostre) (?:\p{L}+ ){0,2}?(?:account|conto|abbonamento|iscrizione|piano|contratto|ordine|prenotazione|password|indirizzo|dati|carta|metodo di pagamento|profilo|accesso|identità|licenza)`,
  nl: String.raw`(?:uw|je|jouw) (?:\p{L}+ ){0,2}?(?:account|abonnement|lidmaatschap|contract|bestelling|boeking|reservering|wachtwoord|e-?mailadres|adres|gegevens|kaart|betaalmethode|profiel|toegang|identiteit|licentie|pakket)`,
  pt: String.raw`(?:seu|sua|seus|suas|teu|tua|teus|tuas) (?:\p{L}+ ){0,2}?(?:conta|assinatura|subscrição|plano|contrato|pedido|encomenda|reserva|senha|palavra-passe|endereço|dados|cartão|método de pagamento|perfil|acesso|identidade|licença)`
}

/** English participles that differ from the verb's plain form; "reset" is both, and counts after an auxiliary only. */
const DONE_EN = String.raw`cancell?ed|terminated|deleted|closed|deactivated|disabled|suspended|removed|erased|changed|updated|unlocked|unblocked|reactivated|activated|reinstated|re-?enabled|restored|verified|approved|upgraded|downgraded|extended|renewed|paused|transferred|merged`
const DO_EN = String.raw`cancel|terminate|delete|close|deactivate|disable|suspend|remove|erase|reset|change|update|(?:un)?lock|(?:un)?block|freeze|reactivate|activate|reinstate|re-?enable|restore|verify|approve|upgrade|downgrade|extend|renew|pause|transfer|merge`
/** In the gap between "we" and the verb: "we recommend that you reset", "we can reset", "we are unable to reset" are no deed. */
const NOT_DONE_BY_US = String.raw`(?!you\b|to\b|can\b|could\b|may\b|might\b|would\b|should\b|must\b|need\b|want\b|help\b|let\b)`

/** Who else on our side could be said to have done it: "our billing team", "the support department". */
const OUR_PEOPLE = String.raw`(?:our|the)\s+(?:[\w-]+\s+){0,2}?(?:team|department|colleagues?|staff|support|agents?|engineers?|specialists?|managers?|admins?|administrators?|system)`

const english = [
  // "I have cancelled your subscription", "we went ahead and reset your password"
  new RegExp(String.raw`\b(?:i|we)(?:'ve|'d|\s+have|\s+had)?\s+(?:${NOT_DONE_BY_US}[\w']+\s+){0,3}?(?:${DONE_EN}|reset)\s+(?:[\w-]+\s+)?your\s+(?:[\w-]+\s+){0,2}?(?:${OBJECTS.en})\b`, "i"),
  // "your subscription has been cancelled", "your account is now closed"
  new RegExp(String.raw`\byour\s+(?:[\w-]+\s+){0,2}?(?:${OBJECTS.en})\s+(?:[\w-]+\s+){0,3}?(?:has|have|had|was|were|is|are|got)\s+(?:(?:now|already|just|successfully|been|also|finally|fully)\s+){0,3}(?:${DONE_EN}|reset)\b`, "i"),
  // "our billing team has cancelled your subscription", "the support team already closed your account": a deed
  // said done by someone else on our side is as untrue. (Their future, "the team will look at it", is the handoff
  // an answer should make, and is left alone.)
  new RegExp(String.raw`\b${OUR_PEOPLE}\s+(?:(?:has|have|had)\s+)?(?:(?:now|already|just|successfully|also|finally)\s+){0,2}(?:${DONE_EN})\s+(?:[\w-]+\s+)?your\s+(?:[\w-]+\s+){0,2}?(?:${OBJECTS.en})\b`, "i"),
  new RegExp(String.raw`\b${OUR_PEOPLE}\s+(?:has|have|had)\s+(?:(?:now|already|just|successfully|also|finally)\s+){0,2}reset\s+(?:[\w-]+\s+)?your\s+(?:[\w-]+\s+){0,2}?(?:${OBJECTS.en})\b`, "i"),
  // "we will delete your account", "I'm going to reset your password"
  new RegExp(String.raw`\b(?:i|we)(?:'ll|\s+will|\s+shall|'m going to|'re going to|\s+am going to|\s+are going to)\s+(?:${NOT_DONE_BY_US}\w+\s+){0,2}?(?:${DO_EN})\s+(?:[\w-]+\s+)?your\s+(?:[\w-]+\s+){0,2}?(?:${OBJECTS.en})\b`, "i")
]

/** "I have cancelled it for you", "we'll close it today": a deed on a pronoun, heard where the answer names what it stands for. */
const onAPronoun = [
  new RegExp(String.raw`\b(?:i|we)(?:'ve|'d|\s+have|\s+had)?\s+(?:${NOT_DONE_BY_US}[\w']+\s+){0,3}?(?:${DONE_EN}|reset)\s+(?:it|them)\b`, "i"),
  new RegExp(String.raw`\b(?:i|we)(?:'ll|\s+will|\s+shall|'m going to|'re going to|\s+am going to|\s+are going to)\s+(?:${NOT_DONE_BY_US}\w+\s+){0,2}?(?:${DO_EN})\s+(?:it|them)\b`, "i")
]
const namesAnObject = new RegExp(String.raw`\b(?:your|the)\s+(?:[\w-]+\s+){0,2}?(?:${OBJECTS.en})\b`, "i")

/** Each of the other six languages' deeds done (participles, and a past tense where it differs) and verbs of doing. */
const DE_DONE = String.raw`gekündigt|storniert|gelöscht|geschlossen|deaktiviert|gesperrt|entsperrt|zurückgesetzt|geändert|aktualisiert|reaktiviert|wiederhergestellt|verifiziert|verlängert|pausiert|entfernt|freigeschaltet|umgestellt`
const DE_DO = String.raw`kündigen|stornieren|löschen|schließen|deaktivieren|sperren|entsperren|zurücksetzen|ändern|aktualisieren|reaktivieren|wiederherstellen|verlängern|pausieren|entfernen|freischalten`
const FR_DONE = String.raw`(?:annulé|résilié|supprimé|fermé|clôturé|désactivé|bloqué|débloqué|réinitialisé|modifié|changé|réactivé|restauré|vérifié|prolongé|suspendu|renouvelé)e?s?|mise? à jour`
const FR_DO = String.raw`annuler|résilier|supprimer|fermer|clôturer|désactiver|débloquer|réinitialiser|modifier|changer|réactiver|restaurer|prolonger|suspendre`
const ES_DONE = String.raw`(?:cancelad|anulad|eliminad|borrad|cerrad|desactivad|bloquead|desbloquead|restablecid|cambiad|actualizad|modificad|reactivad|restaurad|verificad|renovad|suspendid)[oa]s?|dad[oa]s? de baja`
const ES_DO = String.raw`cancelar|anular|eliminar|borrar|cerrar|desactivar|desbloquear|restablecer|cambiar|actualizar|modificar|reactivar|restaurar|renovar|suspender`
const ES_DID = String.raw`(?:cancel|anul|elimin|borr|cerr|desactiv|desbloque|cambi|actualic|modifiqu|reactiv|restaur|renov)é|restablecí|suspendí`
const IT_DONE = String.raw`(?:annullat|cancellat|eliminat|chius|disattivat|bloccat|sbloccat|reimpostat|modificat|cambiat|aggiornat|riattivat|ripristinat|verificat|rinnovat|sospes|disdett)[oaie]`
const IT_WILL = String.raw`(?:annull|cancell|elimin|chiud|disattiv|sblocc|reimpost|modific|cambi|aggiorn|riattiv|ripristin|rinnov|sospend|disdir)(?:erò|eremo|rò|remo)`
const NL_DONE = String.raw`opgezegd|geannuleerd|verwijderd|gesloten|gedeactiveerd|geblokkeerd|gedeblokkeerd|gereset|hersteld|gewijzigd|veranderd|bijgewerkt|geüpdatet|geactiveerd|geverifieerd|verlengd|gepauzeerd|opgeheven`
const NL_DO = String.raw`opzeggen|annuleren|verwijderen|sluiten|deactiveren|blokkeren|deblokkeren|resetten|herstellen|wijzigen|bijwerken|verlengen|opheffen`
const PT_DONE = String.raw`(?:cancelad|eliminad|excluíd|apagad|encerrad|desativad|bloquead|desbloquead|redefinid|alterad|atualizad|reativad|restaurad|verificad|renovad|suspens)[oa]s?`
const PT_DO = String.raw`cancelar|eliminar|excluir|apagar|encerrar|desativar|desbloquear|redefinir|alterar|atualizar|reativar|restaurar|renovar|suspender`
const PT_DID = String.raw`(?:cancel|elimin|apagu|encerr|desativ|desbloque|alter|atualiz|reativ|restaur|renov)ei|excluí|redefini|suspendi`

/** The other six languages: a participle of a deed, or our future doing it, beside what it is done to. */
const DONE_OR_WILL_DO = anyWord([
  `${DE_DONE}|(?:ich werde|wir werden) (?:\\p{L}+ ){0,5}?(?:${DE_DO})`,
  `${FR_DONE}|(?:je vais|nous allons) (?:\\p{L}+ ){0,2}?(?:${FR_DO})|(?:${FR_DO})(?:ai|ons)`,
  `${ES_DONE}|(?:voy|vamos) a (?:${ES_DO})|(?:${ES_DO})(?:é|emos)|${ES_DID}`,
  `${IT_DONE}|${IT_WILL}`,
  `${NL_DONE}|(?:ik|we|wij) (?:zal|zullen|ga|gaan) (?:\\p{L}+ ){0,4}?(?:${NL_DO})`,
  `${PT_DONE}|(?:vou|vamos) (?:${PT_DO})|(?:${PT_DO})(?:ei|emos)|${PT_DID}`
])

/**
 * The same deeds on a pronoun ("Ich habe es gekündigt", "je l'ai annulé", "ya lo he cancelado",
 * "l'ho annullato", "ik heb het opgezegd", "já o cancelei"), or said done with no subject at all
 * ("ha sido cancelada", "è stato eliminato", "foi cancelada", as these languages leave it out):
 * heard where the answer names, in that language, what it stands for.
 */
const ON_A_PRONOUN = anyWord([
  `(?:ich|wir) (?:habe|haben|hab|hatte|hatten) (?:es|ihn|das|dies\\p{L}*) (?:\\p{L}+ ){0,3}?(?:${DE_DONE})` +
  `|(?:ich|wir) (?:werde|werden) (?:es|ihn|das|dies\\p{L}*) (?:\\p{L}+ ){0,3}?(?:${DE_DO})|(?:es|er|das) (?:wurde|ist|war) (?:\\p{L}+ ){0,2}?(?:${DE_DONE})`,
  `(?:je|nous) (?:l['’]|les |le |la )(?:ai |avons )?(?:\\p{L}+ ){0,2}?(?:${FR_DONE}|(?:${FR_DO})(?:ai|ons))` +
  `|(?:je vais|nous allons) (?:l['’]|les |le |la )(?:${FR_DO})|(?:il|elle|ils|elles) (?:a|ont|est|sont) (?:été |bien |déjà )*(?:${FR_DONE})`,
  `(?:lo|la|los|las) (?:he|hemos) (?:\\p{L}+ )?(?:${ES_DONE})|(?:lo|la|los|las) (?:${ES_DID}|(?:${ES_DO})(?:é|emos))` +
  `|(?:voy|vamos) a (?:${ES_DO})(?:lo|la|los|las)|(?:ha|han) sido (?:${ES_DONE})`,
  `(?:l['’]|lo |la |li |le )(?:ho|abbiamo) (?:\\p{L}+ )?(?:${IT_DONE})|(?:lo|la|li|le) ${IT_WILL}|(?:è|sono) stat[oaie] (?:${IT_DONE})`,
  `(?:ik|we|wij) (?:heb|hebben) (?:het|deze|dit|die) (?:\\p{L}+ ){0,3}?(?:${NL_DONE})` +
  `|(?:ik|we|wij) (?:zal|zullen|ga|gaan) (?:het|deze|dit|die) (?:\\p{L}+ ){0,3}?(?:${NL_DO})|(?:het|deze|dit) (?:is|werd|wordt) (?:\\p{L}+ ){0,2}?(?:${NL_DONE})`,
  `(?:o|a|os|as) (?:${PT_DID}|(?:${PT_DO})(?:ei|emos))|(?:${PT_DID})-(?:o|a|os|as)|(?:foi|foram) (?:${PT_DONE})`
])

const THEIRS = anyWord([OBJECTS.de, OBJECTS.fr, OBJECTS.es, OBJECTS.it, OBJECTS.nl, OBJECTS.pt])

/** A deed described, not claimed: "once your account has been closed, you get a confirmation", "make sure your details are updated". (Negations and "if" are `unclaimed`'s.) */
const described = anyWord([
  String.raw`once|when|after|before|until|as soon as|make sure|ensure|check that|confirm that`,
  String.raw`sobald|nachdem|bevor|bis|sicherstellen|prüfen sie`,
  String.raw`une fois|quand|lorsque|après|avant|dès que|vérifiez`,
  String.raw`una vez|cuando|después de|antes de|hasta que|en cuanto|compruebe|asegúrese`,
  String.raw`una volta|quando|dopo|prima|finché|appena|verifichi|assicurati`,
  String.raw`als|zodra|wanneer|nadat|voordat|totdat|controleer|zorg`,
  String.raw`assim que|quando|depois|antes|até que|verifique|certifique`
])

/** The customer's own report said back, anywhere before the deed in its sentence: "sorry to hear your account was suspended", "Es tut uns leid, dass Ihr Konto gesperrt wurde". */
const reported = anyWord([
  String.raw`sorry to hear|sorry that|understand that|you (?:say|said|mention|mentioned|wrote|write)(?: that)? your`,
  String.raw`tut (?:mir|uns) leid|sie schreiben|sie schrieben`,
  String.raw`désolée?s?|vous écrivez|vous indiquez`,
  String.raw`lamento|lamentamos|sentimos|nos indica|me indica`,
  String.raw`mi dispiace|ci dispiace|ci scrive|scrive che`,
  String.raw`spijt|u schrijft|je schrijft`,
  String.raw`lamento|lamentamos|escreve que`
])

/** The deed in `sentence`, found where it ends, unless its clause up to there says it is not done or only describes it, or the sentence says back the customer's report. */
const deedIn = (sentence: string, named: { readonly en: boolean; readonly others: boolean }): boolean => {
  const ends: Array<number> = []
  for (const pattern of [...english, ...(named.en ? onAPronoun : []), ...(named.others ? [ON_A_PRONOUN] : [])]) {
    const match = pattern.exec(sentence)
    if (match !== null) ends.push(match.index + match[0].length)
  }
  const done = DONE_OR_WILL_DO.exec(sentence)
  const theirs = THEIRS.exec(sentence)
  // Beside each other, in one clause: at most 40 characters between the deed and what it is done to, either way round.
  if (done !== null && theirs !== null) {
    const [first, second] = done.index < theirs.index ? [done, theirs] : [theirs, done]
    const end = second.index + second[0].length
    if (second.index - (first.index + first[0].length) <= 40 && clauseAround(sentence, end - 1).start <= first.index) ends.push(end)
  }
  return ends.some((end) => {
    const said = clauseUpTo(sentence, end)
    return !unclaimed.test(said) && !described.test(said) && !reported.test(sentence.slice(0, end))
  })
}

/** The first sentence of `text` that says an account, a subscription or an order was or will be changed by us, unless the help passages hold it. */
export const deedsIn = (text: string, material: ReadonlyArray<string>): string | undefined => {
  const named = { en: namesAnObject.test(text), others: THEIRS.test(text) }
  return firstNotHeld(sentencesOf(text).filter((sentence) => !sentence.trim().endsWith("?") && deedIn(sentence, named)), material)
}

/**
 * The styles an HTML mail gives its elements, as far as HiddenHtml needs them: inline styles, and
 * the rules of the mail's <style> blocks, in CSS's order of specificity. Selectors are read when
 * they are made of tags, classes, ids and `:link`, joined by descendant or child combinators
 * (`.preheader`, `span.x`, `#y`, `.dark p`, `td > a:link`); others (attributes, siblings, other
 * pseudo-classes) are not. Rules inside `@media` apply to some screens only, and rules for a pointer
 * or a visited link (`a:hover`) to some moments only: a mail is judged as it first shows on a
 * desktop, and those are left out.
 */
import type { parseDocument } from "htmlparser2"

type Node = ReturnType<typeof parseDocument>["children"][number]
export type Element = Extract<Node, { readonly attribs: Record<string, string> }>

/** CSS without its comments; one left open runs to the end. A search, not a RegExp: a megabyte of unclosed comments is read once. */
const withoutComments = (css: string): string => {
  let kept = ""
  let from = 0
  for (let open = css.indexOf("/*"); open >= 0; open = css.indexOf("/*", from)) {
    kept += css.slice(from, open)
    const close = css.indexOf("*/", open + 2)
    if (close < 0) return kept
    from = close + 2
  }
  return kept + css.slice(from)
}

/**
 * An inline style's declarations, lower case, without comments or !important, white space cut to
 * one space between words (`rgb(255 255 255)`, `#000 none`); the last of a property wins, as in CSS.
 */
export const declarations = (style: string): Map<string, string> => {
  const found = new Map<string, string>()
  for (const declaration of withoutComments(style.toLowerCase()).split(";")) {
    const colon = declaration.indexOf(":")
    const property = declaration.slice(0, colon).trim()
    const value = declaration.slice(colon + 1).replace(/\s+/g, " ").replace(/\s*!\s*important\s*$/, "").trim()
    if (colon > 0 && property !== "") found.set(property, value)
  }
  return found
}

/** One element's part of a selector: `td`, `.a.b`, `a#x:link`, `*`. */
interface Compound {
  readonly tag: string | undefined
  readonly id: string | undefined
  readonly classes: ReadonlyArray<string>
  readonly link: boolean
}

/** A rule: its selector's compounds from the element itself outwards, each with how it joins the next (its parent, or any ancestor). */
interface Rule {
  readonly subject: Compound
  readonly ancestors: ReadonlyArray<{ readonly compound: Compound; readonly parentOnly: boolean }>
  readonly specificity: number
  readonly css: Map<string, string>
}

/** Properties that can hide: rules without any are not worth matching. */
const HIDING = /display|opacity|visibility|font-size|overflow|color|background|position|left|top|indent|margin|transform|clip/

/** Whether declarations set the colour of text or what is behind it to something a rule that is not read would make unknown. */
const colouring = (css: Map<string, string>): boolean =>
  ["color", "-webkit-text-fill-color", "background", "background-color", "background-image"].some((property) => {
    const value = css.get(property)
    return value !== undefined && !["inherit", "currentcolor", "initial", "unset"].includes(value)
  })

/** Only while pointed at, pressed, focused, once visited or selected: not how the mail first shows. */
const momentary = /:(?:hover|active|focus|focus-within|focus-visible|visited|:?selection)(?=$|[\s>])/

const compoundShape = /^(\*|[a-z][a-z0-9]*)?((?:[.#][\w-]+)*)(:link)?$/

const compoundOf = (text: string): Compound | undefined => {
  const match = compoundShape.exec(text)
  if (match === null || text === "") return undefined
  const parts = match[2]!.match(/[.#][\w-]+/g) ?? []
  const ids = parts.filter((part) => part.startsWith("#"))
  if (ids.length > 1) return undefined
  return {
    tag: match[1] === "*" ? undefined : match[1],
    id: ids[0]?.slice(1),
    classes: parts.filter((part) => part.startsWith(".")).map((part) => part.slice(1)),
    link: match[3] !== undefined
  }
}

/** A selector's compounds and combinators, or undefined when it uses anything else. */
const selectorOf = (selector: string, css: Map<string, string>): Rule | undefined => {
  const tokens = selector.replace(/\s*>\s*/g, " > ").split(/\s+/).filter(Boolean)
  const compounds: Array<Compound> = []
  const parentOnly: Array<boolean> = []
  for (let i = tokens.length - 1; i >= 0; i--) {
    const compound = compoundOf(tokens[i]!)
    if (compound === undefined) return undefined
    compounds.push(compound)
    const child = tokens[i - 1] === ">"
    if (child) i--
    if (i > 0) parentOnly.push(child)
    else if (child) return undefined
  }
  if (compounds.length === 0) return undefined
  const specificity = compounds.reduce((sum, c) =>
    sum + (c.id === undefined ? 0 : 10_000) + (c.classes.length + (c.link ? 1 : 0)) * 100 + (c.tag === undefined ? 0 : 1), 0)
  return {
    subject: compounds[0]!,
    ancestors: compounds.slice(1).map((compound, i) => ({ compound, parentOnly: parentOnly[i]! })),
    specificity,
    css
  }
}

/**
 * The top-level rules of a style sheet that could hide and whose selectors are read, in the sheet's
 * order, read in one pass: an at-rule's block (@media, @supports, @font-face) is skipped with
 * everything nested in it. `coloursUnread`: a rule that is not read (an attribute or sibling
 * selector) sets a colour or a background, so no element's colours are known for sure.
 */
const rulesOf = (sheet: string): { readonly rules: Array<Rule>; readonly coloursUnread: boolean } => {
  const rules: Array<Rule> = []
  let coloursUnread = false
  const css = withoutComments(sheet.toLowerCase())
  let start = 0
  for (let open = css.indexOf("{"); open >= 0; open = css.indexOf("{", start)) {
    const prelude = css.slice(start, open).trim()
    let depth = 1
    let end = open + 1
    while (end < css.length && depth > 0) {
      if (css[end] === "{") depth++
      else if (css[end] === "}") depth--
      end++
    }
    const body = css.slice(open + 1, end - 1)
    start = end
    // A statement at-rule (@import …;) before the next rule ends at its semicolon.
    const selectors = prelude.slice(prelude.lastIndexOf(";") + 1).trim()
    if (selectors.startsWith("@") || !HIDING.test(body)) continue
    const declared = declarations(body)
    for (const selector of selectors.split(",").map((part) => part.trim())) {
      if (selector === "" || momentary.test(selector)) continue
      const rule = selectorOf(selector, declared)
      if (rule !== undefined) rules.push(rule)
      else if (colouring(declared)) coloursUnread = true
    }
  }
  return { rules, coloursUnread }
}

const tagOf = (element: Element) => element.name.toLowerCase()
const classNames = new WeakMap<Element, ReadonlySet<string>>()
/** An element's classes, split once: every rule it is a candidate for, and every rule that looks up through it, asks again. */
const classesOf = (element: Element): ReadonlySet<string> => {
  let classes = classNames.get(element)
  if (classes === undefined) {
    classes = new Set((element.attribs["class"] ?? "").toLowerCase().split(/\s+/).filter(Boolean))
    classNames.set(element, classes)
  }
  return classes
}

const matches = (compound: Compound, element: Element): boolean =>
  (compound.tag === undefined || compound.tag === tagOf(element)) &&
  (compound.id === undefined || compound.id === element.attribs["id"]?.toLowerCase()) &&
  (!compound.link || (tagOf(element) === "a" && element.attribs["href"] !== undefined)) &&
  (compound.classes.length === 0 || compound.classes.every((name) => classesOf(element).has(name)))

const parentElement = (element: Element): Element | undefined => {
  const parent = element.parent
  return parent !== null && "attribs" in parent ? parent : undefined
}

/**
 * Rules looked up by what an element has (its tag, id and classes), in CSS's order: by specificity,
 * and among equals the later rule wins. Matching stops after a budget of checks, so that a mail of
 * many thousand rules and elements costs no more than an ordinary one: past it, only inline styles
 * count (what a sheet that large hides still counts as words, and no colour is judged).
 */
export class Sheet {
  private readonly index = new Map<string, Array<{ readonly rule: Rule; readonly rank: number }>>()
  private checks = 0
  static readonly budget = 200_000

  /** The rules of the mail's style blocks (their texts). */
  static of(blocks: ReadonlyArray<string>): Sheet {
    const read = blocks.map(rulesOf)
    return new Sheet(read.flatMap((sheet) => sheet.rules), read.some((sheet) => sheet.coloursUnread))
  }

  private constructor(rules: ReadonlyArray<Rule>, private readonly coloursUnread: boolean) {
    const ordered = [...rules].sort((a, b) => a.specificity - b.specificity)
    ordered.forEach((rule, rank) => {
      const { classes, id, tag } = rule.subject
      const key = classes.length > 0 ? `.${classes[0]}` : id !== undefined ? `#${id}` : tag ?? "*"
      const bucket = this.index.get(key)
      if (bucket === undefined) this.index.set(key, [{ rule, rank }])
      else bucket.push({ rule, rank })
    })
  }

  /** Whether every colour and background the sheet gives an element is known: all its rules read, and matched so far. */
  get coloursKnown(): boolean {
    return !this.coloursUnread && this.checks <= Sheet.budget
  }

  /** Whether the rule's ancestors, from the `from`th on, are found above `element`: CSS's right-to-left matching. */
  private above(rule: Rule, from: number, element: Element): boolean {
    if (from === rule.ancestors.length) return true
    const { compound, parentOnly } = rule.ancestors[from]!
    for (let up = parentElement(element); up !== undefined && this.checks <= Sheet.budget; up = parentOnly ? undefined : parentElement(up)) {
      this.checks++
      if (matches(compound, up) && this.above(rule, from + 1, up)) return true
    }
    return false
  }

  /** The declarations of the rules that match, in order; empty past the budget. */
  declared(element: Element): ReadonlyArray<Map<string, string>> {
    if (this.index.size === 0 || this.checks > Sheet.budget) return []
    const id = element.attribs["id"]?.toLowerCase()
    const keys = [tagOf(element), "*", ...(id === undefined ? [] : [`#${id}`]), ...[...classesOf(element)].map((name) => `.${name}`)]
    const candidates = keys.flatMap((key) => this.index.get(key) ?? [])
    this.checks += candidates.length
    return candidates
      .filter(({ rule }) => matches(rule.subject, element) && this.above(rule, 0, element))
      .sort((a, b) => a.rank - b.rank)
      .map(({ rule }) => rule.css)
  }
}

/** The style an element gets: the matching rules in order, then its inline style, which wins. */
export const styleOf = (element: Element, sheet: Sheet): Map<string, string> | undefined => {
  const inline = element.attribs["style"] === undefined ? undefined : declarations(element.attribs["style"])
  const declared = sheet.declared(element)
  if (declared.length === 0) return inline
  return new Map([...declared.flatMap((css) => [...css]), ...(inline ?? [])])
}

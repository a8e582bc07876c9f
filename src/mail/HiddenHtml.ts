/**
 * Text a person never sees in an HTML mail: elements hidden by their own inline style or by the
 * `hidden` attribute. A mail whose words come from its HTML (no text part, or HTML beside a text
 * part rather than as its alternative) reached the ticket, the help search and the model with these
 * words too, so a mail could carry instructions for the model that the person reading it never saw,
 * and a link hidden that way counted as the customer's own.
 * What a reader's mail client shows is what the customer said.
 *
 * Inline styles are read, and the rules of the mail's <style> blocks whose selectors are simple (a
 * tag, classes, an id: `.preheader`, `span.x`, `#y`; rules inside `@media` apply to some screens
 * only and are left out), in CSS's order of specificity, with CSS's inheritance where a child can
 * undo its parent's (font-size, visibility). Descendant or attribute selectors, and white text on a
 * white table, are not recognised: such text still counts.
 */
import { DomUtils, parseDocument } from "htmlparser2"

type Node = ReturnType<typeof parseDocument>["children"][number]
type Element = Extract<Node, { readonly attribs: Record<string, string> }>

/** Cheap first look: without any of these words nothing can be hidden, and the HTML is not parsed. */
const MAYBE_HIDDEN = /hidden|display|opacity|font-size|visibility/i

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

/** An inline style's declarations, lower case, without white space, comments or !important; the last of a property wins, as in CSS. */
const declarations = (style: string): Map<string, string> => {
  const found = new Map<string, string>()
  for (const declaration of withoutComments(style.toLowerCase()).replace(/\s+/g, "").split(";")) {
    const colon = declaration.indexOf(":")
    if (colon > 0) found.set(declaration.slice(0, colon), declaration.slice(colon + 1).replace(/!important$/, ""))
  }
  return found
}

/** A style rule with a simple selector, and its specificity (ids, classes, tag) for CSS's order. */
interface Rule {
  readonly tag: string | undefined
  readonly id: string | undefined
  readonly classes: ReadonlyArray<string>
  readonly specificity: number
  readonly css: Map<string, string>
}

/** Properties that can hide: rules without any are not worth matching. */
const HIDING = /display|opacity|visibility|font-size|overflow/

const simpleSelector = /^([a-z][a-z0-9]*)?((?:[.#][\w-]+)+)?$/

/**
 * The top-level rules of a style sheet that could hide and whose selectors are simple, in the
 * sheet's order, read in one pass: an at-rule's block (@media, @supports, @font-face) is skipped
 * with everything nested in it.
 */
const rulesOf = (sheet: string): Array<Rule> => {
  const rules: Array<Rule> = []
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
      const match = simpleSelector.exec(selector)
      if (match === null || selector === "") continue
      const parts = match[2]?.match(/[.#][\w-]+/g) ?? []
      const ids = parts.filter((part) => part.startsWith("#"))
      if (ids.length > 1) continue
      const classes = parts.filter((part) => part.startsWith(".")).map((part) => part.slice(1))
      rules.push({
        tag: match[1],
        id: ids[0]?.slice(1),
        classes,
        specificity: ids.length * 10_000 + classes.length * 100 + (match[1] === undefined ? 0 : 1),
        css: declared
      })
    }
  }
  return rules
}

/**
 * Rules looked up by what an element has (its tag, id and classes), in CSS's order: by specificity,
 * and among equals the later rule wins. Matching stops after a budget of checks, so that a mail of
 * many thousand rules and elements costs no more than an ordinary one: past it, only inline styles
 * count (what a sheet that large hides still counts as words).
 */
class Sheet {
  private readonly index = new Map<string, Array<{ readonly rule: Rule; readonly rank: number }>>()
  private checks = 0
  static readonly budget = 200_000

  constructor(rules: ReadonlyArray<Rule>) {
    const ordered = [...rules].sort((a, b) => a.specificity - b.specificity)
    ordered.forEach((rule, rank) => {
      const key = rule.classes.length > 0 ? `.${rule.classes[0]}` : rule.id !== undefined ? `#${rule.id}` : rule.tag!
      const bucket = this.index.get(key)
      if (bucket === undefined) this.index.set(key, [{ rule, rank }])
      else bucket.push({ rule, rank })
    })
  }

  /** The declarations of the rules that match, in order; empty past the budget. */
  declared(element: Element): ReadonlyArray<Map<string, string>> {
    if (this.index.size === 0 || this.checks > Sheet.budget) return []
    const tag = element.name.toLowerCase()
    const id = element.attribs["id"]?.toLowerCase()
    const classes = [...new Set((element.attribs["class"] ?? "").toLowerCase().split(/\s+/).filter(Boolean))]
    const keys = [tag, ...(id === undefined ? [] : [`#${id}`]), ...classes.map((name) => `.${name}`)]
    const candidates = keys.flatMap((key) => this.index.get(key) ?? [])
    this.checks += candidates.length
    return candidates
      .filter(({ rule }) =>
        (rule.tag === undefined || rule.tag === tag) && (rule.id === undefined || rule.id === id) &&
        rule.classes.every((name) => classes.includes(name))
      )
      .sort((a, b) => a.rank - b.rank)
      .map(({ rule }) => rule.css)
  }
}

/** The style an element gets: the matching rules in order, then its inline style, which wins. */
const styleOf = (element: Element, sheet: Sheet): Map<string, string> | undefined => {
  const inline = element.attribs["style"] === undefined ? undefined : declarations(element.attribs["style"])
  const declared = sheet.declared(element)
  if (declared.length === 0) return inline
  return new Map([...declared.flatMap((css) => [...css]), ...(inline ?? [])])
}

/** A length or number that is zero: 0, 0px, 0.0em, 0%. */
const zero = (value: string | undefined): boolean =>
  value !== undefined && /^[+-]?0*\.?0*(?:[a-z]+|%)?$/.test(value) && value.includes("0")

/** Too small to read or to show anything: zero, or under 2 pixels or points (a preheader's `font-size:1px`, a 1px box). */
const unreadable = (value: string | undefined): boolean => {
  if (value === undefined) return false
  if (zero(value)) return true
  const size = /^(\d*\.?\d+)(px|pt)$/.exec(value)
  return size !== null && Number(size[1]) < 2
}

/** Sizes relative to the parent's: of a zero font size they stay zero. */
const relative = (value: string) => /(?:em|ex|ch|%)$/.test(value) || ["inherit", "larger", "smaller"].includes(value)

/** Hidden with everything in it, whatever a child says: no box, no opacity, or a box too small to show anything that clips. */
const gone = (element: Element, css: Map<string, string> | undefined): boolean => {
  if (element.attribs["hidden"] !== undefined) return true
  if (css === undefined) return false
  const clipped = ["overflow", "overflow-x", "overflow-y"].some((property) => css.get(property) === "hidden")
  return css.get("display") === "none" ||
    zero(css.get("opacity")) ||
    (clipped && ["height", "max-height", "width", "max-width"].some((property) => unreadable(css.get(property))))
}

/** What a child inherits and may undo: an unreadable font size (zero is a common trick against gaps, undone by each column) and visibility. */
interface Inherited {
  readonly tiny: boolean
  readonly invisible: boolean
}

const inherit = (parent: Inherited, css: Map<string, string> | undefined): Inherited => {
  if (css === undefined) return parent
  const size = css.get("font-size")
  const visibility = css.get("visibility")
  return {
    tiny: size === undefined ? parent.tiny : unreadable(size) || (relative(size) && parent.tiny),
    invisible: visibility === undefined || visibility === "inherit" ? parent.invisible : visibility !== "visible"
  }
}

/**
 * The HTML without what is hidden, or undefined when nothing in it is (the caller keeps its own
 * conversion). Entities stay as written, so the rest converts exactly as before. Callers bound the
 * input first: mailparser's own conversion has already accepted its length and nesting depth.
 */
export const visibleHtml = (html: string): string | undefined => {
  if (!MAYBE_HIDDEN.test(html)) return undefined
  const document = parseDocument(html, { decodeEntities: false })
  const sheet = new Sheet(DomUtils.getElementsByTagName("style", document).flatMap((style) => rulesOf(DomUtils.textContent(style))))
  const found: Array<Node> = []
  const visit = (nodes: ReadonlyArray<Node>, inherited: Inherited): void => {
    for (const node of nodes) {
      if ("attribs" in node) {
        const css = styleOf(node, sheet)
        if (gone(node, css)) found.push(node)
        else visit(node.children, inherit(inherited, css))
      } else if (node.type === "text" && (inherited.tiny || inherited.invisible) && node.data.trim() !== "") {
        found.push(node)
      }
    }
  }
  visit(document.children, { tiny: false, invisible: false })
  if (found.length === 0) return undefined
  for (const node of found) DomUtils.removeElement(node)
  return DomUtils.getOuterHTML(document, { decodeEntities: false })
}

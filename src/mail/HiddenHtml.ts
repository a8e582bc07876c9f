/**
 * Text a person never sees in an HTML mail: elements hidden by their own inline style or by the
 * `hidden` attribute. A mail whose words come from its HTML (no text part) reached the ticket, the
 * help search and the model with these words too, so a mail could carry instructions for the model
 * that the person reading it never saw, and a link hidden that way counted as the customer's own.
 * What a reader's mail client shows is what the customer said.
 *
 * Only inline styles are read, with CSS's inheritance where a child can undo its parent's
 * (font-size, visibility): a rule in a <style> block (`.x { display: none }`) or white text on a
 * white table is not recognised, and such text still counts.
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

/** A length or number that is zero: 0, 0px, 0.0em, 0%. */
const zero = (value: string | undefined): boolean =>
  value !== undefined && /^[+-]?0*\.?0*(?:[a-z]+|%)?$/.test(value) && value.includes("0")

/** Sizes relative to the parent's: of a zero font size they stay zero. */
const relative = (value: string) => /(?:em|ex|ch|%)$/.test(value) || ["inherit", "larger", "smaller"].includes(value)

/** Hidden with everything in it, whatever a child says: no box, no opacity, or a box of no size that clips. */
const gone = (element: Element, css: Map<string, string> | undefined): boolean => {
  if (element.attribs["hidden"] !== undefined) return true
  if (css === undefined) return false
  const clipped = ["overflow", "overflow-x", "overflow-y"].some((property) => css.get(property) === "hidden")
  return css.get("display") === "none" ||
    zero(css.get("opacity")) ||
    (clipped && ["height", "max-height", "width", "max-width"].some((property) => zero(css.get(property))))
}

/** What a child inherits and may undo: a font size of zero (a common trick against gaps, undone by each column) and visibility. */
interface Inherited {
  readonly tiny: boolean
  readonly invisible: boolean
}

const inherit = (parent: Inherited, css: Map<string, string> | undefined): Inherited => {
  if (css === undefined) return parent
  const size = css.get("font-size")
  const visibility = css.get("visibility")
  return {
    tiny: size === undefined ? parent.tiny : zero(size) || (relative(size) && parent.tiny),
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
  const found: Array<Node> = []
  const visit = (nodes: ReadonlyArray<Node>, inherited: Inherited): void => {
    for (const node of nodes) {
      if ("attribs" in node) {
        const css = node.attribs["style"] === undefined ? undefined : declarations(node.attribs["style"])
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

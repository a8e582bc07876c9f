/**
 * Text a person never sees in an HTML mail. A mail whose words come from its HTML (no text part, or
 * HTML beside a text part rather than as its alternative) reached the ticket, the help search and
 * the model with these words too, so a mail could carry instructions for the model that the person
 * reading it never saw, and a link hidden that way counted as the customer's own.
 * What a reader's mail client shows is what the customer said. Hidden are:
 * - elements without a box (`display:none`, the `hidden` attribute), fully transparent, clipped to
 *   almost nothing, or placed far off the page (`left:-9999px`, `text-indent:-9999px`, `scale(0)`);
 * - text under a font size too small to read or `visibility:hidden`, unless a child undoes it;
 * - text in the colour of what is behind it (white on white, `transparent`), with CSS's
 *   inheritance of colour (`<font color>` and `<body text>` included) and the nearest background an
 *   ancestor paints (white when none does).
 *
 * Styles come from inline styles and the rules of the mail's style blocks (MailStyles). A mail is
 * judged as it first shows on a desktop, in light mode. Where a style rule that is not read (an
 * attribute or sibling selector) sets a colour or a background, only transparent text is judged by
 * its colour; what such a rule hides otherwise is not recognised either: its text still counts.
 */
import { DomUtils, parseDocument } from "htmlparser2"
import type { Rgba } from "./CssColor.js"
import { BLACK, contrast, LINK_BLUE, over, parseColor, WHITE } from "./CssColor.js"
import type { Element } from "./MailStyles.js"
import { Sheet, styleOf } from "./MailStyles.js"

type Node = ReturnType<typeof parseDocument>["children"][number]

/** Cheap first look: without any of these words nothing can be hidden, and the HTML is not parsed. */
const MAYBE_HIDDEN = /hidden|display|opacity|font-size|visibility|color|background|position|indent|margin|transform|clip|<body[^>]*\stext\s*=/i

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

/** Far off the page, up or to the left: `-9999px`, `-100em`. */
const farOff = (value: string | undefined): boolean => {
  const length = value === undefined ? null : /^-(\d*\.?\d+)(px|pt|em|rem)$/.exec(value)
  return length !== null && Number(length[1]) >= (length[2] === "px" || length[2] === "pt" ? 500 : 30)
}

/** Moved out of sight with everything in it: placed or indented far off the page, scaled to nothing, clipped to nothing. */
const offPage = (css: Map<string, string>): boolean => {
  const placed = ["absolute", "fixed"].includes(css.get("position") ?? "")
  return (placed && (farOff(css.get("left")) || farOff(css.get("top")))) ||
    ["text-indent", "margin-left", "margin-top"].some((property) => farOff(css.get(property))) ||
    /scale[xy3d]*\(\s*[+-]?0*\.?0*\s*[,)]/.test(css.get("transform") ?? "") ||
    (placed && /^rect\((?:\s*0(?:px)?\s*,?){4}\)$/.test(css.get("clip") ?? "")) ||
    /^inset\((?:[5-9]\d|100)%\)$/.test(css.get("clip-path") ?? "")
}

/** Hidden with everything in it, whatever a child says: no box, no opacity, a box too small to show anything that clips, or off the page. */
const gone = (element: Element, css: Map<string, string> | undefined): boolean => {
  if (element.attribs["hidden"] !== undefined) return true
  if (css === undefined) return false
  const clipped = ["overflow", "overflow-x", "overflow-y"].some((property) => css.get(property) === "hidden")
  return css.get("display") === "none" ||
    zero(css.get("opacity")) ||
    (clipped && ["height", "max-height", "width", "max-width"].some((property) => unreadable(css.get(property)))) ||
    offPage(css)
}

/**
 * What a child inherits and may undo: an unreadable font size (zero is a common trick against gaps,
 * undone by each column), visibility, and the colour of its text; and what is painted behind it.
 * A colour or a background that is not known (an image, `var(--x)`) is undefined.
 */
interface Inherited {
  readonly tiny: boolean
  readonly invisible: boolean
  readonly color: Rgba | undefined
  readonly background: Rgba | undefined
}

/** The background an element paints over its parent's: a colour (mixed in where it is translucent), none, or not known (an image, a gradient). */
const backgroundOf = (element: Element, css: Map<string, string> | undefined, parent: Rgba | undefined): Rgba | undefined => {
  const declared = css?.get("background-color") ?? css?.get("background")
  const attribute = element.attribs["bgcolor"]?.trim().toLowerCase()
  if (/url\(|gradient|image-set/.test(css?.get("background") ?? "") || (css?.get("background-image") ?? "none") !== "none" || element.attribs["background"] !== undefined) return undefined
  const painted = declared === undefined
    ? attribute === undefined ? null : parseColor(attribute, true)
    : declared === "none" || declared === "inherit" || declared === "initial" ? null : declared.split(/\s+(?![^(]*\))/).map((token) => parseColor(token)).find((color) => color !== undefined)
  if (painted === null) return parent
  if (painted === undefined) return declared === undefined ? parent : undefined
  if (painted.a >= 1) return painted
  return parent === undefined ? undefined : over(painted, parent)
}

/** The colour of an element's text: its own, the `<font color>` it is, the `<body text>` it is, a link's blue, or its parent's. */
const colorOf = (element: Element, css: Map<string, string> | undefined, parent: Rgba | undefined): Rgba | undefined => {
  const declared = css?.get("-webkit-text-fill-color") ?? css?.get("color")
  if (declared !== undefined) return declared === "inherit" ? parent : parseColor(declared)
  const name = element.name.toLowerCase()
  const attribute = name === "font" ? element.attribs["color"] : name === "body" ? element.attribs["text"] : undefined
  if (attribute !== undefined) return parseColor(attribute.trim().toLowerCase(), true)
  return name === "a" && element.attribs["href"] !== undefined ? LINK_BLUE : parent
}

const inherit = (parent: Inherited, element: Element, css: Map<string, string> | undefined): Inherited => {
  const size = css?.get("font-size")
  const visibility = css?.get("visibility")
  return {
    tiny: size === undefined ? parent.tiny : unreadable(size) || (relative(size) && parent.tiny),
    invisible: visibility === undefined || visibility === "inherit" ? parent.invisible : visibility !== "visible",
    color: colorOf(element, css, parent.color),
    background: backgroundOf(element, css, parent.background)
  }
}

/**
 * Text no reader tells apart from what is behind it: a contrast under 1.3 (`#e5e5e5` on white; light
 * grey footers such as `#cccccc`, at 1.6, still count), or a colour almost fully transparent whatever
 * is behind it. Where a rule that is not read may paint a background, only the transparent is known.
 */
const unseen = ({ background, color }: Inherited, backgroundsKnown: boolean): boolean =>
  color !== undefined && (color.a < 0.1 || (backgroundsKnown && background !== undefined && contrast(color, background) < 1.3))

const NEVER_SHOWN = new Set(["head", "style", "script", "title", "template"])

/**
 * The HTML without what is hidden, or undefined when nothing in it is (the caller keeps its own
 * conversion). Entities stay as written, so the rest converts exactly as before. Callers bound the
 * input first: mailparser's own conversion has already accepted its length and nesting depth.
 */
export const visibleHtml = (html: string): string | undefined => {
  if (!MAYBE_HIDDEN.test(html)) return undefined
  const document = parseDocument(html, { decodeEntities: false })
  const sheet = Sheet.of(DomUtils.getElementsByTagName("style", document).map((style) => DomUtils.textContent(style)))
  const found: Array<Node> = []
  const visit = (nodes: ReadonlyArray<Node>, inherited: Inherited): void => {
    for (const node of nodes) {
      if ("attribs" in node) {
        // What the head, a style block or a script hold is never shown, and their text is no reader's.
        if (NEVER_SHOWN.has(node.name.toLowerCase())) continue
        const css = styleOf(node, sheet)
        if (gone(node, css)) found.push(node)
        else visit(node.children, inherit(inherited, node, css))
      } else if (
        node.type === "text" && node.data.trim() !== "" &&
        (inherited.tiny || inherited.invisible || unseen(inherited, sheet.coloursKnown))
      ) {
        found.push(node)
      }
    }
  }
  visit(document.children, { tiny: false, invisible: false, color: BLACK, background: WHITE })
  if (found.length === 0) return undefined
  for (const node of found) DomUtils.removeElement(node)
  return DomUtils.getOuterHTML(document, { decodeEntities: false })
}

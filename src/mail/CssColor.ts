/**
 * Colours as a mail's HTML writes them, and whether text in one can be read on another. HiddenHtml
 * uses it for text a reader cannot see because it has the colour of what is behind it: white on
 * white, or transparent.
 */
import names from "color-name"

/** Red, green and blue from 0 to 255, alpha from 0 to 1. */
export interface Rgba {
  readonly r: number
  readonly g: number
  readonly b: number
  readonly a: number
}

export const WHITE: Rgba = { r: 255, g: 255, b: 255, a: 1 }
export const BLACK: Rgba = { r: 0, g: 0, b: 0, a: 1 }
/** An unvisited link, as browsers and mail clients draw one that sets no colour of its own. */
export const LINK_BLUE: Rgba = { r: 0, g: 0, b: 238, a: 1 }

const clamp = (value: number, max: number) => Math.min(max, Math.max(0, value))

const hex = (digits: string): Rgba | undefined => {
  const full = digits.length <= 4 ? [...digits].map((digit) => digit + digit).join("") : digits
  if (full.length !== 6 && full.length !== 8) return undefined
  const byte = (at: number) => parseInt(full.slice(at, at + 2), 16)
  return { r: byte(0), g: byte(2), b: byte(4), a: full.length === 8 ? byte(6) / 255 : 1 }
}

/** A number of rgb(), or of its alpha: plain or a percentage. */
const channel = (value: string, max: number): number | undefined => {
  const match = /^([+-]?\d*\.?\d+)(%?)$/.exec(value)
  if (match === null) return undefined
  const number = Number(match[1])
  return clamp(match[2] === "%" ? (number / 100) * max : number, max)
}

/** hsl() to rgb, as CSS Color 3 defines it; hue in degrees, saturation and lightness from 0 to 1. */
const fromHsl = (hue: number, saturation: number, lightness: number): [number, number, number] => {
  const f = (n: number) => {
    const k = (n + hue / 30) % 12
    const a = saturation * Math.min(lightness, 1 - lightness)
    return Math.round(255 * (lightness - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))))
  }
  return [f(0), f(8), f(4)]
}

/** rgb(), rgba(), hsl() and hsla(), with commas or with CSS Color 4's spaces and slash. */
const functional = (name: string, args: string): Rgba | undefined => {
  const parts = args.replace(/\s*\/\s*/, ",").split(/\s*,\s*|\s+/).filter(Boolean)
  if (parts.length !== 3 && parts.length !== 4) return undefined
  const alpha = parts[3] === undefined ? 1 : channel(parts[3], 1)
  if (alpha === undefined) return undefined
  if (name.startsWith("rgb")) {
    const [r, g, b] = parts.slice(0, 3).map((part) => channel(part, 255))
    return r === undefined || g === undefined || b === undefined ? undefined : { r, g, b, a: alpha }
  }
  const hue = Number(parts[0]!.replace(/deg$/, ""))
  const saturation = channel(parts[1]!, 1)
  const lightness = channel(parts[2]!, 1)
  if (Number.isNaN(hue) || saturation === undefined || lightness === undefined || !parts[1]!.endsWith("%")) return undefined
  const [r, g, b] = fromHsl(((hue % 360) + 360) % 360, saturation, lightness)
  return { r, g, b, a: alpha }
}

/**
 * A CSS colour (lower case, no spaces around it): `#fff`, `#ffffff80`, `rgb(255 255 255 / 0)`,
 * `hsl(0,0%,100%)`, a name, `transparent`. In HTML's colour attributes (`bgcolor`, `<font color>`)
 * browsers also read hex digits without their `#`. Anything else (`inherit`, `currentcolor`,
 * `var(--x)`) is undefined: not known.
 */
export const parseColor = (value: string, attribute = false): Rgba | undefined => {
  if (value === "transparent") return { ...BLACK, a: 0 }
  const named = Object.hasOwn(names, value) ? names[value as keyof typeof names] : undefined
  if (named !== undefined) return { r: named[0], g: named[1], b: named[2], a: 1 }
  const digits = /^#?([0-9a-f]{3,8})$/.exec(value)
  if (digits !== null && (value.startsWith("#") || attribute)) return hex(digits[1]!)
  const call = /^(rgba?|hsla?)\((.*)\)$/.exec(value)
  return call === null ? undefined : functional(call[1]!, call[2]!)
}

/** `color` drawn over `below`, which is opaque: what the eye gets where the two mix. */
export const over = (color: Rgba, below: Rgba): Rgba => ({
  r: color.r * color.a + below.r * (1 - color.a),
  g: color.g * color.a + below.g * (1 - color.a),
  b: color.b * color.a + below.b * (1 - color.a),
  a: 1
})

/** WCAG's relative luminance. */
const luminance = (color: Rgba): number => {
  const linear = (value: number) => {
    const s = value / 255
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4
  }
  return 0.2126 * linear(color.r) + 0.7152 * linear(color.g) + 0.0722 * linear(color.b)
}

/** WCAG's contrast ratio of text in `color` on the opaque `background`: 1 (the same) to 21 (black on white). */
export const contrast = (color: Rgba, background: Rgba): number => {
  const [a, b] = [luminance(over(color, background)), luminance(background)]
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)
}

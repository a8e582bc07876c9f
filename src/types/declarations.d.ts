/** The one function mailroom takes from html-to-text (the version mailparser pins), which ships no types. */
declare module "html-to-text" {
  export function compile(options?: { readonly limits?: { readonly maxDepth?: number } }): (html: string) => string
}

/** ES2024's, which Node 20 has (V8 11.3) and TypeScript's ES2023 library does not declare. */
interface String {
  isWellFormed(): boolean
}

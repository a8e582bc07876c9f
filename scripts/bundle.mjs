// npm run build: type-checks src (tsc), then bundles it with its packages into dist/ (esbuild).
// One tree-shaken bundle instead of hundreds of modules: a quarter less memory at start, and a start
// that reads a few files instead of ~390 (imapflow, mailparser, nodemailer, pg: 0.6 → 0.45 s for a
// `--once` with nothing new, docs/performance.md).
import { readFileSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { build } from "esbuild"
import { fetchAnswerFormat } from "./fetchAnswerFormat.mjs"

const requireHere = createRequire(import.meta.url)

/**
 * Left to Node at run time: PGlite, and the packages loaded only on first use (DKIM checks, a
 * MAILBOXES_FILE, Kafka, the OTLP exporter), which a start does not read anyway. A CommonJS package
 * reached through `import()` would lose its named exports in the bundle.
 */
const unbundled = /^(@electric-sql\/pglite(-socket)?|mailauth|yaml|kafkajs|@opentelemetry\/[^/]+)(\/|$)/

const externalPackages = {
  name: "external-packages",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (unbundled.test(args.path) ? { path: args.path, external: true } : undefined))
  }
}

/**
 * The bundle is ESM; the CommonJS packages in it (pg, nodemailer, imapflow's dependencies) still call
 * `require` for Node's own modules, which esbuild leaves to a `require` in scope.
 */
const requireInScope = 'import { createRequire as __mailroomRequire } from "node:module"; const require = __mailroomRequire(import.meta.url);'

/**
 * @effect/cli imports parsers for YAML, TOML and INI config files (210 modules) at start-up; mailroom
 * reads no config file through it. Each becomes a stub that loads the package on first use.
 */
const lazyCliParsers = {
  name: "lazy-cli-parsers",
  setup(b) {
    b.onResolve({ filter: /^(ini|toml|yaml)$/ }, (args) =>
      args.importer.includes("/@effect/cli/") ? { path: args.path, namespace: "lazy-cli-parser" } : undefined)
    b.onLoad({ filter: /.*/, namespace: "lazy-cli-parser" }, (args) => ({
      contents: `import { createRequire } from "node:module"
const require = createRequire(import.meta.url)
export const parse = (text) => require(${JSON.stringify(args.path)}).parse(text)`,
      loader: "js"
    }))
  }
}

/**
 * Each package once. mailsplit `require`s libmime, which then comes in as CommonJS beside the ES
 * module mailparser and imapflow import, each with its own iconv-lite (a copy nested under imapflow
 * and one under libmime, of the same version), and each building iconv-lite's GBK decoder at start.
 * One libmime (its ES module: mailsplit reads only `Libmime`, which it exports) and one iconv-lite:
 * a start compiles and runs about 1 MB less. The build fails if the copies' versions part.
 */
const oneCopy = {
  name: "one-copy",
  setup(b) {
    const libmime = requireHere.resolve("libmime").replace(/dist[\\/]cjs[\\/].*$/, "dist/esm/libmime.js")
    const iconv = dirname(createRequire(libmime).resolve("iconv-lite/package.json"))
    const imapflowIconv = dirname(createRequire(requireHere.resolve("imapflow")).resolve("iconv-lite/package.json"))
    const version = (dir) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version
    if (version(iconv) !== version(imapflowIconv)) {
      throw new Error(`libmime and imapflow bring different iconv-lite versions (${version(iconv)}, ${version(imapflowIconv)}): look at one-copy in scripts/bundle.mjs`)
    }
    const iconvMain = createRequire(libmime).resolve("iconv-lite")
    b.onResolve({ filter: /^libmime$/ }, () => ({ path: libmime }))
    b.onResolve({ filter: /^iconv-lite$/ }, () => ({ path: iconvMain }))
  }
}

/**
 * Packages of paths mailroom rarely or never takes, loaded on first use instead of at every start:
 * SOCKS (imapflow's proxy option, unused), pino (imapflow's logger when given none; mailroom gives
 * `false`), encoding-japanese (a mail in ISO-2022-JP or another JIS charset). Each stub keeps the
 * one name its importer reads; Node loads the package from node_modules then.
 */
const onFirstUse = {
  "encoding-japanese": 'export default { convert: (...args) => require("encoding-japanese").convert(...args) }',
  socks: 'export const SocksClient = { createConnection: (...args) => require("socks").SocksClient.createConnection(...args) }',
  pino: 'export default (...args) => require("pino")(...args)'
}
const rarelyUsed = {
  name: "rarely-used",
  setup(b) {
    b.onResolve({ filter: /^(encoding-japanese|socks|pino)$/ }, (args) => ({ path: args.path, namespace: "rarely-used" }))
    b.onLoad({ filter: /.*/, namespace: "rarely-used" }, (args) => ({
      contents: `import { createRequire } from "node:module"\nconst require = createRequire(import.meta.url)\n${onFirstUse[args.path]}`,
      loader: "js"
    }))
  }
}

/**
 * pg tells Cloudflare Workers from Node by constructing a fetch `Response` when `navigator` is
 * missing, as it is on Node 20: that loads Node's bundled undici, 26 ms of every start, for an
 * answer a Node bundle knows. The build fails if pg's probe changes, rather than patch blind.
 */
const probe = "typeof Response === 'function'"
const nodeOnlyPg = {
  name: "node-only-pg",
  setup(b) {
    b.onLoad({ filter: /[\\/]pg[\\/]lib[\\/]stream\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8")
      if (!source.includes(probe)) throw new Error(`pg's Cloudflare probe changed in ${args.path}: look at node-only-pg in scripts/bundle.mjs`)
      return { contents: source.replace(probe, "false"), loader: "js" }
    })
  }
}

/**
 * pg-protocol writes a Bind message into a buffer that starts at 256 bytes and grows by half each
 * time it is full, copying what it holds: a commit's multi-row INSERT (a batch's raw mail, events
 * and rows, megabytes) was copied about three times over. Sized once from the values' lengths
 * before they are written, it is copied once. The build fails if the serializer changes.
 */
const bindAnchor = "    writer.addInt16(len);\n    try {\n        writeValues(values, config.valueMapper, formatsOffset);"
const presizedBind = {
  name: "presized-bind",
  setup(b) {
    b.onLoad({ filter: /[\\/]pg-protocol[\\/]dist[\\/]serializer\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8")
      if (!source.includes(bindAnchor)) throw new Error(`pg-protocol's bind changed in ${args.path}: look at presized-bind in scripts/bundle.mjs`)
      const sized = bindAnchor.replace(
        "    try {",
        "    let bytes = 0;\n    for (let i = 0; i < len; i++) { const v = values[i]; bytes += 4 + (v instanceof Buffer || typeof v === 'string' ? v.length : 24); }\n    writer.ensure(bytes + 4);\n    try {"
      )
      return { contents: source.replace(bindAnchor, sized), loader: "js" }
    })
  }
}

/**
 * mailparser converts an HTML part to text with html-to-text's `convert`, which compiles its options
 * (selectors into decision trees, formatters) on every call: about 0.3 ms of an HTML-only mail's
 * 0.5. mailparser passes the same options every time, `{ limits: { maxDepth } }`; a call with just
 * those reuses one compilation, as `src/mail/HtmlText.ts` does. Other calls compile as before. The
 * build fails if `convert` changes.
 */
const convertAnchor = "function convert (html, options = {}, metadata = undefined) {\n  return compile(options)(html, metadata);\n}"
const compiledConvert = {
  name: "compiled-convert",
  setup(b) {
    b.onLoad({ filter: /[\\/]html-to-text[\\/]lib[\\/]html-to-text\.mjs$/ }, (args) => {
      const source = readFileSync(args.path, "utf8")
      if (!source.includes(convertAnchor)) throw new Error(`html-to-text's convert changed in ${args.path}: look at compiled-convert in scripts/bundle.mjs`)
      const reusing = [
        "const compiledByDepth = new Map();",
        "function convert (html, options = {}, metadata = undefined) {",
        "  const limits = options && options.limits;",
        "  const depthOnly = Object.keys(options).length === 1 && limits && Object.keys(limits).length === 1 && typeof limits.maxDepth === 'number';",
        "  if (!depthOnly) return compile(options)(html, metadata);",
        "  let converter = compiledByDepth.get(limits.maxDepth);",
        "  if (converter === undefined) { converter = compile({ limits: { maxDepth: limits.maxDepth } }); compiledByDepth.set(limits.maxDepth, converter); }",
        "  return converter(html, metadata);",
        "}"
      ].join("\n")
      return { contents: source.replace(convertAnchor, reusing), loader: "js" }
    })
  }
}

/**
 * imapflow sends `AUTHENTICATE PLAIN` and waits for the server's "+" before it sends the
 * credentials, even where the server offers SASL-IR (RFC 4959), as Gmail and Dovecot do: a round
 * trip per login that its XOAUTH2 path already spares. With SASL-IR the credentials ride on the
 * command line; a "+" then is answered with "*", which cancels the exchange (RFC 3501 6.2.2) and
 * fails the login as a refused password would. The build fails if authPlain changes.
 */
const plainAnchor = "        let response = await connection.exec('AUTHENTICATE', [{ type: 'ATOM', value: 'PLAIN' }], {\n            onPlusTag: async () => {\n"
const plainWithInitialResponse = {
  name: "plain-with-initial-response",
  setup(b) {
    b.onLoad({ filter: /[\\/]imapflow[\\/]dist[\\/]esm[\\/]commands[\\/]authenticate\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8")
      if (!source.includes(plainAnchor)) throw new Error(`imapflow's authPlain changed in ${args.path}: look at plain-with-initial-response in scripts/bundle.mjs`)
      const inline = [
        "        const inline = connection.capabilities.has('SASL-IR');",
        "        const plain = [{ type: 'ATOM', value: 'PLAIN' }];",
        "        if (inline) plain.push({ type: 'ATOM', value: Buffer.from([authzid || '', username, password].join('\\x00')).toString('base64'), sensitive: true });",
        "        let response = await connection.exec('AUTHENTICATE', plain, {",
        "            onPlusTag: async () => {",
        "                if (inline) { connection.write('*'); return; }",
        ""
      ].join("\n")
      return { contents: source.replace(plainAnchor, inline), loader: "js" }
    })
  }
}

rmSync("dist", { recursive: true, force: true })

await build({
  entryPoints: { main: "src/main.ts", parserWorker: "src/mail/parserWorker.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: "linked",
  plugins: [oneCopy, rarelyUsed, lazyCliParsers, nodeOnlyPg, presizedBind, compiledConvert, plainWithInitialResponse, fetchAnswerFormat, externalPackages],
  logLevel: "warning",
  banner: { js: requireInScope }
})

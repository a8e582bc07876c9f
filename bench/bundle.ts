/**
 * node --import tsx bench/bundle.ts [DIR]: bundles src/ as scripts/bundle.mjs does, but into a
 * private folder (a fresh one under the system's temp folder by default) instead of dist/, which
 * others may be using or rebuilding. Prints the main.js to give the bench as BENCH_MAIN:
 *
 *   BENCH_MAIN=$(node --import tsx bench/bundle.ts) BENCH_ONLY=small node --import tsx bench/run.ts
 *
 * Bare imports resolve through a node_modules link to this checkout's; the embedded database's
 * template (dist/pgdata.tar.gz) is copied from `npm run build`'s cache when there is one.
 */
import { existsSync } from "node:fs"
import { copyFile, mkdir, mkdtemp, readdir, symlink } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const root = fileURLToPath(new URL("..", import.meta.url))
const bundled = /^(effect|@effect\/[^/]+|fast-check|pure-rand|@standard-schema\/spec)(\/|$)/

const dir = process.argv[2] ? resolve(process.argv[2]) : await mkdtemp(join(tmpdir(), "mailroom-bench-build-"))
const out = join(dir, "dist")
await mkdir(out, { recursive: true })
if (!existsSync(join(dir, "node_modules"))) await symlink(join(root, "node_modules"), join(dir, "node_modules"), "dir")

await build({
  entryPoints: { main: join(root, "src/main.ts"), parserWorker: join(root, "src/mail/parserWorker.ts") },
  outdir: out,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: "linked",
  plugins: [{
    name: "external-packages",
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => (bundled.test(args.path) ? undefined : { path: args.path, external: true }))
    }
  }],
  logLevel: "warning"
})

const cache = join(root, "node_modules/.cache/mailroom")
const template = existsSync(cache) ? (await readdir(cache)).find((name) => /^pgdata-.*\.tar\.gz$/.test(name)) : undefined
if (template) await copyFile(join(cache, template), join(out, "pgdata.tar.gz"))
else if (existsSync(join(root, "dist/pgdata.tar.gz"))) await copyFile(join(root, "dist/pgdata.tar.gz"), join(out, "pgdata.tar.gz"))
else console.error("no PGlite template (run npm run build once): the PGlite rows run initdb on their first start")

console.log(join(out, "main.js"))

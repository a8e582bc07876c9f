// npm run build, after the bundle: dist/pgdata.tar.gz, an empty PGlite database that the embedded
// default's first start unpacks instead of running initdb (why: openEmbedded in src/log/Sql.ts). It is
// made by the installed PGlite, so it always matches the PostgreSQL that opens it, and kept in
// node_modules/.cache between builds (making it takes 4–5 s).
import { existsSync } from "node:fs"
import { copyFile, mkdir, readFile, rename, writeFile } from "node:fs/promises"
import { PGlite } from "@electric-sql/pglite"

const { version } = JSON.parse(await readFile(new URL("../node_modules/@electric-sql/pglite/package.json", import.meta.url), "utf8"))
const cache = new URL(`../node_modules/.cache/mailroom/pgdata-${version}.tar.gz`, import.meta.url)

if (!existsSync(cache)) {
  const db = await PGlite.create()
  const tarball = Buffer.from(await (await db.dumpDataDir("gzip")).arrayBuffer())
  await db.close()
  await mkdir(new URL(".", cache), { recursive: true })
  await writeFile(new URL(`${cache.href}.tmp`), tarball)
  await rename(new URL(`${cache.href}.tmp`), cache)
}
await copyFile(cache, new URL("../dist/pgdata.tar.gz", import.meta.url))

// A bundle patch of imapflow, in a module of its own so that test/unit/fetchAnswerFormat.test.ts can
// bundle imapflow with it and hold it to the unpatched package.
import { readFileSync } from "node:fs"

/**
 * imapflow formats every FETCH answer with two costs nobody here uses: each item's name (UID,
 * RFC822.SIZE, BODY[]) is compiled back into an IMAP string to name its field, and an MD5 `id` is
 * hashed from the folder, UIDVALIDITY and UID (mailroom keys mail by UID). Together about 1% of
 * a small pass. A plain atom's name (no section, no partial) now compiles once and is looked up
 * after that (at most 64 kept: the server chooses them), and the id is worked out when first read.
 * The build fails if either piece changes.
 */
/** imapflow's compile of an item's name, kept as it is in both versions. */
const compileKey = [
  "            key = compiler({",
  "                attributes: [attribute]",
  "            })",
  "                .toString()",
  "                .toLowerCase()",
  "                .replace(/<(\\d+)(\\.\\d+)?>$/, (match, start) => {",
  "                origin = parseUintValue(start, MAX_UINT32_DIGITS);",
  "                return '';",
  "            });"
]
const keyAnchor = ["            origin = false;", ...compileKey, "            continue;"].join("\n")
const keyLookup = [
  "            origin = false;",
  "            const plainAtom = attribute && attribute.type === 'ATOM' && typeof attribute.value === 'string' && !attribute.section && !attribute.partial;",
  "            const knownKey = plainAtom ? fetchKeyNames.get(attribute.value) : undefined;",
  "            if (knownKey !== undefined) {",
  "                key = knownKey;",
  "                continue;",
  "            }",
  ...compileKey,
  "            if (plainAtom && origin === false && fetchKeyNames.size < 64) fetchKeyNames.set(attribute.value, key);",
  "            continue;"
].join("\n")
const idAnchor = [
  "        map.id =",
  "            map.emailId ||",
  "                createHash(idHashAlgorithm || 'md5')",
  "                    .update([path, mailbox.uidValidity?.toString() || '', map.uid.toString()].join(':'))",
  "                    .digest('hex');"
].join("\n")
const lazyId = [
  "        if (map.emailId) map.id = map.emailId;",
  "        else {",
  "            const idSource = [path, mailbox.uidValidity?.toString() || '', map.uid.toString()].join(':');",
  "            let idValue;",
  "            Object.defineProperty(map, 'id', {",
  "                enumerable: true,",
  "                configurable: true,",
  "                get: () => (idValue ??= createHash(idHashAlgorithm || 'md5').update(idSource).digest('hex')),",
  "                set: (value) => { idValue = value; }",
  "            });",
  "        }"
].join("\n")
export const fetchAnswerFormat = {
  name: "fetch-answer-format",
  setup(b) {
    b.onLoad({ filter: /[\\/]imapflow[\\/]dist[\\/]esm[\\/]tools\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8")
      if (!source.includes(keyAnchor) || !source.includes(idAnchor)) {
        throw new Error(`imapflow's formatMessageResponse changed in ${args.path}: look at scripts/fetchAnswerFormat.mjs`)
      }
      const contents = source.replace(keyAnchor, keyLookup).replace(idAnchor, lazyId)
        .replace("export async function formatMessageResponse(", "const fetchKeyNames = new Map();\nexport async function formatMessageResponse(")
      return { contents, loader: "js" }
    })
  }
}

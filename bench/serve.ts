/**
 * npm run bench:serve [-- --count N] [-- --small]: a private Dovecot holding the benchmark corpus
 * (with --small, the small real-world mail of bench/smallCorpus.ts, 6,000 by default), left running
 * for profiling (`node --cpu-prof dist/main.js --once` against it). Prints the environment to use.
 */
import { generateCorpus } from "../test/support/corpus.js"
import { startDovecot } from "../test/support/dovecot.js"
import { DEFAULT_COUNTS } from "./options.js"
import { generateSmallCorpus } from "./smallCorpus.js"

const small = process.argv.includes("--small")
const index = process.argv.indexOf("--count")
const count = index > 0 ? Number(process.argv[index + 1]) : small ? DEFAULT_COUNTS.small : DEFAULT_COUNTS.backlog

const dovecot = await startDovecot({ users: [{ user: "support@example.com", password: "bench-pass" }] })
await dovecot.deliver((function*() {
  if (small) for (const m of generateSmallCorpus(count, { to: dovecot.user })) yield m.raw
  else for (const m of generateCorpus(count)) yield m.raw
})())
await dovecot.uids()
console.log(
  `GMAIL_SENDER_EMAIL=${dovecot.user} GMAIL_SENDER_PASSWORD=${dovecot.password} IMAP_HOST=127.0.0.1 IMAP_PORT=${dovecot.port} IMAP_TLS=false IMAP_BACKFILL=all AGENT=off`
)
const stop = () => void dovecot.stop().finally(() => process.exit(0))
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
setInterval(() => {}, 1 << 30)

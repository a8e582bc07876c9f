import { availableParallelism } from "node:os"
import { Config } from "effect"
import { list, settingList } from "./Settings.js"

/** Mail settings: parsing and sender authentication. */
const { all, setting } = settingList()
export const settings = all

export const parserThreads = setting(
  "PARSER_THREADS",
  "Worker threads that parse MIME beside the main thread (0 parses on the main thread).",
  (name) => Config.integer(name).pipe(Config.validate({ message: "Expected 0 or more", validation: (n) => n >= 0 })),
  // The main thread and, usually, PostgreSQL need a core each: on 2 cores workers only add memory.
  { value: Math.max(0, Math.min(4, availableParallelism() - 2)), shown: "CPUs minus 2, at most 4" }
)

/** Comma-separated, lower-cased: authserv-ids compare without case. */
const authservIds = (name: string) =>
  list(name).pipe(Config.map((ids) => ids.map((id) => id.toLowerCase())))

export type SenderVerify = "headers" | "dkim"

export const SenderAuthConfig = Config.all({
  trustedAuthservIds: setting(
    "TRUSTED_AUTHSERV_IDS",
    "Comma-separated authserv-ids (the first word of an Authentication-Results header) whose verdict counts, e.g. mx.google.com for Gmail; headers from any other server are ignored. Exchange Online writes no authserv-id: use SENDER_VERIFY=dkim there.",
    authservIds,
    { value: ["mx.google.com"], shown: "mx.google.com" }
  ),
  verify: setting(
    "SENDER_VERIFY",
    "headers: trust only the Authentication-Results of TRUSTED_AUTHSERV_IDS; dkim: when a mail has none, verify its DKIM and DMARC here with DNS lookups (for mail servers that add no such header).",
    (name) => Config.literal("headers", "dkim")(name),
    { value: "headers" as SenderVerify }
  )
})
export type SenderAuthConfig = Config.Config.Success<typeof SenderAuthConfig>

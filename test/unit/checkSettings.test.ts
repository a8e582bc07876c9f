import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect } from "effect"
import { allSettings } from "../../src/config/All.js"
import { describeFailure } from "../../src/cli/Fatal.js"
import { checkSettings } from "../../src/mailbox/Fleet.js"

/** A provider over `env` that notes every variable looked up, set or not. */
const recording = (env: Record<string, string>, seen: Set<string>) => {
  const inner = ConfigProvider.fromMap(new Map(Object.entries(env))).flattened
  return ConfigProvider.fromFlat(ConfigProvider.makeFlat({
    load: (path, config, split) => {
      seen.add(path.join("."))
      return inner.load(path, config, split)
    },
    enumerateChildren: inner.enumerateChildren,
    patch: inner.patch
  }))
}

const check = (env: Record<string, string>, seen = new Set<string>()) =>
  Effect.withConfigProvider(checkSettings, recording(env, seen))

/** The one line a start stopped by `env` prints (without "mailroom: "), or undefined when it would go on. */
const stopLine = (env: Record<string, string>) =>
  check(env).pipe(
    Effect.flip,
    Effect.map((error) => describeFailure(Cause.fail(error))?.line),
    Effect.orElseSucceed(() => undefined)
  )

const mailbox = { GMAIL_SENDER_EMAIL: "support@example.com", GMAIL_SENDER_PASSWORD: "secret" }

const temp = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-check-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

describe("the settings a start reads before anything opens", () => {
  it.effect("are every setting mailroom declares, with password and OAuth2 logins and with each agent", () =>
    Effect.gen(function*() {
      const seen = new Set<string>()
      yield* check({ ...mailbox, AGENT: "openai" }, seen)
      yield* check({ GMAIL_SENDER_EMAIL: "support@example.com", MAILBOX_AUTH: "oauth2" }, seen)
      const declared = allSettings.map((s) => s.name)
      expect(declared.filter((name) => !seen.has(name))).toEqual([])
      expect(declared.length).toBeGreaterThan(80)
    }))

  it.effect("stop on a value that does not read, naming it; the answers' settings count only while there are answers", () =>
    Effect.gen(function*() {
      expect(yield* stopLine({ GMAIL_SENDER_PASSWORD: "secret" })).toMatch(/^GMAIL_SENDER_EMAIL is not set: /)
      expect(yield* stopLine({ ...mailbox, SMTP_PORT: "abc" })).toMatch(/^SMTP_PORT is invalid \(Expected a network port value but received "abc"\)/)
      expect(yield* stopLine({ ...mailbox, SMTP_PORT: "abc", AGENT: "off" })).toBeUndefined()
      expect(yield* stopLine({ ...mailbox, LLM_TIMEOUT: "0" })).toBeUndefined()
      expect(yield* stopLine({ ...mailbox, LLM_TIMEOUT: "0", AGENT: "openai" })).toMatch(/^LLM_TIMEOUT is invalid/)
      expect(yield* stopLine({ ...mailbox, KAFKA_TOPIC_PARTITIONS: "three" })).toMatch(/^KAFKA_TOPIC_PARTITIONS is invalid/)
      expect(yield* stopLine({ ...mailbox, DATABASE_POOL_SIZE: "0" })).toMatch(/^DATABASE_POOL_SIZE is invalid/)
      expect(yield* stopLine({ ...mailbox, MAILBOX_AUTH: "oauth2", OAUTH2_PROVIDER: "yahoo" })).toMatch(/^OAUTH2_PROVIDER is invalid/)
      expect(yield* stopLine(mailbox)).toBeUndefined()
    }))

  it.scoped("with MAILBOXES_FILE, are read under each mailbox's own settings", () =>
    Effect.gen(function*() {
      const path = join(yield* temp, "mailboxes.yaml")
      const file = (replies: string) =>
        Effect.promise(() =>
          writeFile(
            path,
            `mailboxes:
  - address: help@example.com
    auth: { password_env: HELP_PASSWORD }
    folders: [INBOX]
    smtp: { host: smtp.example.com, port: 587, tls: starttls }
${replies}`
          )
        )
      const env = { MAILBOXES_FILE: path, HELP_PASSWORD: "secret", SMTP_PORT: "abc", LLM_TIMEOUT: "0" }
      // No GMAIL_SENDER_EMAIL: the file names the account. The file's SMTP port wins over the environment's.
      yield* file("")
      expect(yield* stopLine(env)).toBeUndefined()
      yield* file("    replies: { agent: openai }\n")
      expect(yield* stopLine(env)).toMatch(/^LLM_TIMEOUT is invalid/)
      expect(yield* stopLine({ ...env, HELP_PASSWORD: "" })).toMatch(/^MAILBOXES_FILE .*mailboxes\[0\] \(help@example.com\) auth.password_env/)
    }))
})

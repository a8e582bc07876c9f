import { execFile, spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connect as tlsConnect } from "node:tls"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { Context, Effect, Layer } from "effect"
import { ImapFlow } from "imapflow"
import { freePort } from "./dovecot.js"

/** test/run.sh reads this line to fetch the same jar. */
export const GREENMAIL_VERSION = "2.1.3"

const repoRoot = fileURLToPath(new URL("../..", import.meta.url))
const cache = process.env.MAILROOM_CACHE ?? join(repoRoot, ".cache")
export const greenmailDir = join(cache, `greenmail-${GREENMAIL_VERSION}`)
export const greenmailJar = join(greenmailDir, `greenmail-standalone-${GREENMAIL_VERSION}.jar`)

const run = promisify(execFile)

/** The jar from Maven Central, once; on CI it must already be there, fetched by test/run.sh. */
const ensureJar = async () => {
  if (existsSync(greenmailJar)) return
  if (process.env.CI === "true") {
    throw new Error(`GreenMail ${GREENMAIL_VERSION} is missing at ${greenmailJar}: test/run.sh fetches it from Maven Central before the tests`)
  }
  await run("mvn", [
    "-q",
    "-B",
    "dependency:copy",
    `-Dartifact=com.icegreen:greenmail-standalone:${GREENMAIL_VERSION}`,
    `-DoutputDirectory=${greenmailDir}`
  ]).catch((error: unknown) => {
    throw new Error(`could not fetch GreenMail ${GREENMAIL_VERSION} with mvn (bash test/run.sh installs maven): ${String(error)}`)
  })
}

export interface GreenMail {
  readonly host: "127.0.0.1"
  /** Plain IMAP; GreenMail offers no STARTTLS on it. */
  readonly imapPort: number
  /** IMAP over TLS from the first byte, with GreenMail's self-signed certificate. */
  readonly imapsPort: number
  readonly smtpPort: number
  readonly smtpsPort: number
  readonly user: string
  readonly password: string
  append(raws: ReadonlyArray<Buffer | string>): Promise<Array<number>>
  /**
   * Each mail's UID, or undefined for one GreenMail would not store: its MIME parser gives up on
   * some malformed mail and drops the connection (a new one takes the next mail).
   */
  appendEach(raws: ReadonlyArray<Buffer | string>): Promise<Array<number | undefined>>
  uids(): Promise<Array<number>>
  /** The IMAPS port's certificate as PEM, for NODE_EXTRA_CA_CERTS. */
  certificatePem(): Promise<string>
  stop(): Promise<void>
}

const canLogin = async (port: number, user: string, password: string) => {
  const client = new ImapFlow({ host: "127.0.0.1", port, secure: false, auth: { user, pass: password }, logger: false })
  client.on("error", () => {})
  try {
    await client.connect()
    await client.logout()
    return true
  } catch {
    return false
  }
}

/** Runs GreenMail standalone on free loopback ports with one user whose login is its address. */
export const startGreenMail = async (
  options: { readonly user?: string; readonly password?: string } = {}
): Promise<GreenMail> => {
  await ensureJar()
  const user = options.user ?? "support@example.com"
  const password = options.password ?? "secret-app-pass"
  const [local, domain] = user.split("@") as [string, string]
  const [imapPort, imapsPort, smtpPort, smtpsPort, apiPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()])
  const dir = await mkdtemp(join(tmpdir(), "mailroom-greenmail-"))
  const log = join(dir, "greenmail.log")
  const child: ChildProcess = spawn("sh", [
    "-c",
    `exec java "$@" > "${log}" 2>&1`,
    "java",
    "-Xmx256m",
    "-Dgreenmail.hostname=127.0.0.1",
    `-Dgreenmail.imap.port=${imapPort}`,
    `-Dgreenmail.imaps.port=${imapsPort}`,
    `-Dgreenmail.smtp.port=${smtpPort}`,
    `-Dgreenmail.smtps.port=${smtpsPort}`,
    // the REST API would otherwise take port 8080
    "-Dgreenmail.api.hostname=127.0.0.1",
    `-Dgreenmail.api.port=${apiPort}`,
    `-Dgreenmail.users=${local}:${password}@${domain}`,
    "-Dgreenmail.users.login=email",
    "-jar",
    greenmailJar
  ], { stdio: "ignore" })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))

  const deadline = Date.now() + 60_000
  while (!(await canLogin(imapPort, user, password))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL")
      const tail = (await readFile(log, "utf8").catch(() => "")).split("\n").slice(-15).join("\n")
      await rm(dir, { recursive: true, force: true })
      throw new Error(`GreenMail did not start on port ${imapPort}:\n${tail}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }

  const client = async () => {
    const c = new ImapFlow({ host: "127.0.0.1", port: imapPort, secure: false, auth: { user, pass: password }, logger: false })
    c.on("error", () => {})
    await c.connect()
    return c
  }

  return {
    host: "127.0.0.1",
    imapPort,
    imapsPort,
    smtpPort,
    smtpsPort,
    user,
    password,
    append: async (raws) => {
      const c = await client()
      try {
        const uids: Array<number> = []
        for (const raw of raws) {
          const result = await c.append("INBOX", raw, [])
          if (result && result.uid) uids.push(result.uid)
        }
        return uids
      } finally {
        await c.logout().catch(() => c.close())
      }
    },
    appendEach: async (raws) => {
      const uids: Array<number | undefined> = []
      let c = await client()
      try {
        for (const raw of raws) {
          const result = await c.append("INBOX", raw, []).catch(() => undefined)
          uids.push(result && result.uid ? result.uid : undefined)
          if (!result) {
            c.close()
            c = await client()
          }
        }
        return uids
      } finally {
        await c.logout().catch(() => c.close())
      }
    },
    uids: async () => {
      const c = await client()
      try {
        await c.mailboxOpen("INBOX")
        return ((await c.search({ all: true }, { uid: true })) || []).sort((a, b) => a - b)
      } finally {
        await c.logout().catch(() => c.close())
      }
    },
    certificatePem: () =>
      new Promise((resolve, reject) => {
        const socket = tlsConnect({ host: "127.0.0.1", port: imapsPort, rejectUnauthorized: false }, () => {
          const der = socket.getPeerCertificate().raw
          socket.destroy()
          const base64 = der.toString("base64").match(/.{1,64}/g)!.join("\n")
          resolve(`-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`)
        })
        socket.on("error", reject)
      }),
    stop: async () => {
      if (child.exitCode === null) {
        child.kill("SIGTERM")
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))])
        if (child.exitCode === null) {
          child.kill("SIGKILL")
          await exited
        }
      }
      await rm(dir, { recursive: true, force: true })
    }
  }
}

export const GreenMailResource = (options?: Parameters<typeof startGreenMail>[0]) =>
  Effect.acquireRelease(Effect.promise(() => startGreenMail(options)), (greenmail) => Effect.promise(() => greenmail.stop()))

/** GreenMail for a suite, for `layer(GreenMailServer.layer(options))`. */
export class GreenMailServer extends Context.Tag("test/GreenMailServer")<GreenMailServer, GreenMail>() {
  static readonly layer = (options?: Parameters<typeof startGreenMail>[0]) => Layer.scoped(GreenMailServer, GreenMailResource(options))
}

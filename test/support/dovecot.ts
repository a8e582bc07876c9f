import { execFile, spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { existsSync } from "node:fs"
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { Context, Effect, Layer } from "effect"
import { ImapFlow } from "imapflow"

const DOVECOT = "/usr/sbin/dovecot"
const run = promisify(execFile)

export interface DovecotUser {
  readonly user: string
  readonly password: string
}

export interface MailboxOptions {
  readonly mailbox?: string
  readonly user?: string
}

export interface Dovecot {
  readonly host: "127.0.0.1"
  readonly port: number
  readonly user: string
  readonly password: string
  readonly baseDir: string
  maildir(user?: string): string
  stop(): Promise<void>
  kill(): Promise<void>
  restart(): Promise<void>
  append(raws: ReadonlyArray<Buffer | string>, options?: MailboxOptions & { readonly seen?: boolean }): Promise<Array<number>>
  /** Writes mail straight into the INBOX Maildir (fast, for benchmarks); Dovecot numbers it on the next SELECT. */
  deliver(raws: Iterable<Buffer>, options?: { readonly user?: string }): Promise<number>
  uids(options?: MailboxOptions): Promise<Array<number>>
  flags(options?: MailboxOptions): Promise<Map<number, Set<string>>>
  /** Every mail in the mailbox, whole, with its flags, in UID order. */
  messages(options?: MailboxOptions): Promise<Array<{ readonly uid: number; readonly flags: Set<string>; readonly source: Buffer }>>
  uidValidity(options?: MailboxOptions): Promise<number>
  resetUidValidity(options?: MailboxOptions): Promise<number>
  /** Deletes these mails for good (\Deleted, then UID EXPUNGE). */
  expunge(uids: ReadonlyArray<number>, options?: MailboxOptions): Promise<void>
  setSeen(uids: ReadonlyArray<number>, seen: boolean, options?: MailboxOptions): Promise<void>
  createMailbox(name: string, options?: Omit<MailboxOptions, "mailbox">): Promise<void>
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })

/** Dovecot's oauth2 passdb, validating tokens at an RFC 7662 introspection endpoint. */
export interface DovecotOAuth2 {
  readonly introspectionUrl: string
  /** SASL mechanisms to offer besides PLAIN and LOGIN; default xoauth2 (imapflow prefers OAUTHBEARER when offered). */
  readonly mechanisms?: string
}

const oauth2Passdb = (dir: string, oauth2: DovecotOAuth2 | undefined) =>
  oauth2 === undefined ? "" : `passdb {
  driver = oauth2
  mechanisms = ${oauth2.mechanisms ?? "xoauth2"}
  args = ${dir}/dovecot-oauth2.conf.ext
}
`

const config = (dir: string, port: number, mailUser: string, oauth2?: DovecotOAuth2) => `
protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
info_log_path = ${dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login${oauth2 ? ` ${oauth2.mechanisms ?? "xoauth2"}` : ""}
mail_location = maildir:${dir}/mail/%u
mail_uid = ${mailUser}
mail_gid = ${mailUser}
first_valid_uid = 1
default_internal_user = ${mailUser === "root" ? "dovecot" : mailUser}
default_login_user = ${mailUser === "root" ? "dovenull" : mailUser}
mail_max_userip_connections = 100
imap_idle_notify_interval = 1 secs
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service anvil {
  chroot =
}
${oauth2Passdb(dir, oauth2)}passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${mailUser} gid=${mailUser} home=${dir}/home/%u
}
namespace inbox {
  inbox = yes
  mailbox Sent {
    auto = subscribe
    special_use = \\Sent
  }
  mailbox Drafts {
    special_use = \\Drafts
  }
}
`

const canLogin = async (port: number, user: DovecotUser) => {
  const client = new ImapFlow({ host: "127.0.0.1", port, secure: false, auth: { user: user.user, pass: user.password }, logger: false })
  client.on("error", () => {})
  try {
    await client.connect()
    await client.logout()
    return true
  } catch {
    return false
  }
}

/** Runs a private Dovecot on a free loopback port, with its own config, users and Maildirs. */
export const startDovecot = async (
  options: { readonly users?: ReadonlyArray<DovecotUser>; readonly oauth2?: DovecotOAuth2 } = {}
): Promise<Dovecot> => {
  if (!existsSync(DOVECOT)) throw new Error("dovecot not found: install dovecot-imapd (test/run.sh does this)")
  const users = options.users ?? [{ user: "support@example.com", password: "secret-app-pass" }]
  const main = users[0]!
  // Dovecot refuses to run mail processes as root: as root, mail belongs to the package's own user.
  const mailUser = userInfo().uid === 0 ? "dovecot" : userInfo().username
  const dir = await mkdtemp(join(tmpdir(), "mailroom-dovecot-"))
  await chmod(dir, 0o755)
  const port = await freePort()
  for (const sub of ["run", "state", "mail", "home"]) await mkdir(join(dir, sub))
  if (userInfo().uid === 0) {
    const { stdout } = await run("id", ["-u", mailUser])
    const uid = Number(stdout.trim())
    for (const sub of ["mail", "home"]) await chown(join(dir, sub), uid, uid)
  }
  await writeFile(join(dir, "passwd"), users.map((u) => `${u.user}:{PLAIN}${u.password}`).join("\n") + "\n")
  if (options.oauth2) {
    await writeFile(
      join(dir, "dovecot-oauth2.conf.ext"),
      [
        `introspection_url = ${options.oauth2.introspectionUrl}`,
        "introspection_mode = post",
        "force_introspection = yes",
        "username_attribute = username",
        "active_attribute = active",
        "active_value = true",
        ""
      ].join("\n")
    )
  }
  await writeFile(join(dir, "dovecot.conf"), config(dir, port, mailUser, options.oauth2))
  let process: ChildProcess | undefined

  const launch = async () => {
    process = spawn(DOVECOT, ["-F", "-c", join(dir, "dovecot.conf")], { stdio: "ignore" })
    const deadline = Date.now() + 20_000
    while (!(await canLogin(port, main))) {
      if (process.exitCode !== null || Date.now() > deadline) {
        const log = await readFile(join(dir, "dovecot.log"), "utf8").catch(() => "")
        throw new Error(`dovecot did not start on port ${port}:\n${log.split("\n").slice(-15).join("\n")}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  const halt = async (signal: NodeJS.Signals) => {
    const child = process
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once("exit", resolve))
    child.kill(signal)
    await exited
    // The master's children (imap, auth, log) follow it down; wait until none holds the port.
    await run("pkill", ["-KILL", "-f", `${dir}/`]).catch(() => undefined)
  }

  const client = async (user = main.user) => {
    const credentials = users.find((u) => u.user === user) ?? main
    const c = new ImapFlow({ host: "127.0.0.1", port, secure: false, auth: { user: credentials.user, pass: credentials.password }, logger: false })
    c.on("error", () => {})
    await c.connect()
    return c
  }

  const withMailbox = async <A>(options: MailboxOptions, use: (c: ImapFlow) => Promise<A>): Promise<A> => {
    const c = await client(options.user)
    try {
      await c.mailboxOpen(options.mailbox ?? "INBOX")
      return await use(c)
    } finally {
      await c.logout().catch(() => c.close())
    }
  }

  await launch()

  const self: Dovecot = {
    host: "127.0.0.1",
    port,
    user: main.user,
    password: main.password,
    baseDir: dir,
    maildir: (user = main.user) => join(dir, "mail", user),
    stop: async () => {
      await halt("SIGTERM")
      await rm(dir, { recursive: true, force: true })
    },
    kill: () => halt("SIGKILL"),
    restart: async () => {
      await halt("SIGTERM")
      await launch()
    },
    append: async (raws, options = {}) => {
      const c = await client(options.user)
      try {
        const uids: Array<number> = []
        // Pipelined APPENDs on one connection: imapflow queues them, the server answers in order.
        const results = await Promise.all(
          raws.map((raw) => c.append(options.mailbox ?? "INBOX", raw, options.seen ? ["\\Seen"] : []))
        )
        for (const result of results) if (result && result.uid) uids.push(result.uid)
        return uids
      } finally {
        await c.logout().catch(() => c.close())
      }
    },
    deliver: async (raws, options = {}) => {
      const box = self.maildir(options.user)
      for (const sub of ["new", "cur", "tmp"]) await mkdir(join(box, sub), { recursive: true })
      let count = 0
      for (const raw of raws) {
        const name = `${1_700_000_000 + count}.M${count}P${globalThis.process.pid}.mailroom,S=${raw.length}`
        await writeFile(join(box, "tmp", name), raw)
        await rename(join(box, "tmp", name), join(box, "new", name))
        count += 1
      }
      if (userInfo().uid === 0) await run("chown", ["-R", `${mailUser}:${mailUser}`, box])
      return count
    },
    uids: (options = {}) =>
      withMailbox(options, async (c) => ((await c.search({ all: true }, { uid: true })) || []).sort((a, b) => a - b)),
    flags: (options = {}) =>
      withMailbox(options, async (c) => {
        const flags = new Map<number, Set<string>>()
        for await (const m of c.fetch("1:*", { uid: true, flags: true }, { uid: true })) flags.set(m.uid, m.flags ?? new Set())
        return flags
      }),
    messages: (options = {}) =>
      withMailbox(options, async (c) => {
        const messages: Array<{ uid: number; flags: Set<string>; source: Buffer }> = []
        if (c.mailbox && c.mailbox.exists === 0) return messages
        for await (const m of c.fetch("1:*", { uid: true, flags: true, source: true }, { uid: true })) {
          messages.push({ uid: m.uid, flags: m.flags ?? new Set(), source: m.source ?? Buffer.alloc(0) })
        }
        return messages.sort((a, b) => a.uid - b.uid)
      }),
    uidValidity: (options = {}) => withMailbox(options, async (c) => Number((c.mailbox as { uidValidity: bigint }).uidValidity)),
    resetUidValidity: async (options = {}) => {
      const before = await self.uidValidity(options)
      await halt("SIGTERM")
      const box = join(self.maildir(options.user), options.mailbox && options.mailbox !== "INBOX" ? `.${options.mailbox}` : "")
      // Without its uidlist and indexes Dovecot renumbers the mailbox under a new UIDVALIDITY; the
      // files, and their flags in the file names, stay.
      for (const name of await readdir(box)) {
        if (name.startsWith("dovecot")) await rm(join(box, name), { recursive: true, force: true })
      }
      await new Promise((resolve) => setTimeout(resolve, 1100))
      await launch()
      const after = await self.uidValidity(options)
      if (after === before) throw new Error("UIDVALIDITY did not change")
      return after
    },
    expunge: (uids, options = {}) =>
      withMailbox(options, async (c) => {
        if (uids.length > 0) await c.messageDelete([...uids], { uid: true })
      }),
    setSeen: (uids, seen, options = {}) =>
      withMailbox(options, async (c) => {
        if (uids.length === 0) return
        if (seen) await c.messageFlagsAdd([...uids], ["\\Seen"], { uid: true })
        else await c.messageFlagsRemove([...uids], ["\\Seen"], { uid: true })
      }),
    createMailbox: async (name, options = {}) => {
      const c = await client(options.user)
      try {
        await c.mailboxCreate(name).catch(() => undefined)
      } finally {
        await c.logout().catch(() => c.close())
      }
    }
  }
  return self
}

/** A private Dovecot for one test, stopped when its scope closes. */
export const DovecotResource = (options?: Parameters<typeof startDovecot>[0]) =>
  Effect.acquireRelease(Effect.promise(() => startDovecot(options)), (dovecot) => Effect.promise(() => dovecot.stop()))

/** A private Dovecot for a suite: `layer(DovecotServer.layer())(…)`, stopped when the suite ends. */
export class DovecotServer extends Context.Tag("test/DovecotServer")<DovecotServer, Dovecot>() {
  static readonly layer = (options?: Parameters<typeof startDovecot>[0]) => Layer.scoped(DovecotServer, DovecotResource(options))
}


/** The settings that point mailroom at this Dovecot's main user over plain IMAP, answering nothing. */
/** Two accounts for the MAILBOXES_FILE tests: `DovecotServer.layer({ users: [SUPPORT, SALES] })`. */
export const SUPPORT = { user: "support@acme.test", password: "support-pass" }
export const SALES = { user: "sales@globex.test", password: "sales-pass" }

/** mailroom over `dir`/mailboxes.yaml, the two accounts' passwords in the variables it names, and `db`. */
export const fileEnv = (dir: string, db: { readonly url: string }, extra: Record<string, string> = {}) => ({
  MAILBOXES_FILE: join(dir, "mailboxes.yaml"),
  SUPPORT_PASSWORD: SUPPORT.password,
  SALES_PASSWORD: SALES.password,
  DATABASE_URL: db.url,
  IMAP_BACKFILL: "all",
  AGENT: "off",
  ...extra
})

/** A MAILBOXES_FILE (YAML) over accounts of a Dovecot on `port`, each password in the variable it names. */
export const mailboxesYaml = (
  port: number,
  accounts: ReadonlyArray<{ readonly user: string; readonly passwordEnv: string; readonly folders?: ReadonlyArray<string> }>
) =>
  ["mailboxes:", ...accounts.flatMap((account) => [
    `  - address: ${account.user}`,
    `    imap: { host: 127.0.0.1, port: ${port}, tls: false }`,
    `    auth: { password_env: ${account.passwordEnv} }`,
    ...(account.folders === undefined ? [] : [`    folders: [${account.folders.join(", ")}]`])
  ]), ""].join("\n")

export const dovecotEnv = (dovecot: Pick<Dovecot, "user" | "password" | "host" | "port">): Record<string, string> => ({
  GMAIL_SENDER_EMAIL: dovecot.user,
  GMAIL_SENDER_PASSWORD: dovecot.password,
  IMAP_HOST: dovecot.host,
  IMAP_PORT: String(dovecot.port),
  IMAP_TLS: "false",
  AGENT: "off"
})

/**
 * The original guide's two loops from ../shared/bench, run with Debian's /usr/bin/python3:
 * seed_imaplib.py (fetch-only: one UID FETCH per mail, parsed, nothing stored) and seed_full.py (the
 * whole loop: UNSEEN search, one FETCH per mail, parse, three autocommitted inserts, \Seen).
 */
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { userInfo } from "node:os"
import { promisify } from "node:util"

const run = promisify(execFile)

export const PYTHON = "/usr/bin/python3"

export interface BaselineResult {
  readonly messages: number
  readonly seconds: number
}

/** `seed-imaplib: 500 msgs 32.1 MB in 12.52s = 40 msg/s` */
export const parseFetchOnly = (stdout: string): BaselineResult => {
  const match = /(\d+) msgs ([\d.]+) MB in ([\d.]+)s/.exec(stdout)
  if (!match) throw new Error(`unexpected output from seed_imaplib.py: ${stdout}`)
  return { messages: Number(match[1]), seconds: Number(match[3]) }
}

/** `seed-full: 500 msgs in 3.10s = 161 msg/s` */
export const parseWholeLoop = (stdout: string): BaselineResult => {
  const match = /(\d+) msgs in ([\d.]+)s/.exec(stdout)
  if (!match) throw new Error(`unexpected output from seed_full.py: ${stdout}`)
  return { messages: Number(match[1]), seconds: Number(match[2]) }
}

export const sharedBenchDir = (root: string) =>
  [`${root}../shared/bench`, `${root}shared/bench`].find((dir) => existsSync(`${dir}/seed_imaplib.py`))

const required = (dir: string | undefined, script: string) => {
  if (!dir || !existsSync(`${dir}/${script}`)) throw new Error(`../shared/bench/${script} not found: the baselines need it`)
  return `${dir}/${script}`
}

export const INSTALL_PSYCOPG2 = "apt-get update && apt-get install -y python3-psycopg2"

const hasPsycopg2 = () => run(PYTHON, ["-c", "import psycopg2"]).then(() => true, () => false)

/**
 * seed_full.py needs Debian's python3-psycopg2. When it is missing the bench installs it, as root or
 * through passwordless sudo (as test/run.sh installs what the tests need); otherwise it says how.
 */
export const ensurePsycopg2 = async (log: (line: string) => void) => {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} not found: install Debian's python3 (apt-get install -y python3 python3-psycopg2)`)
  if (await hasPsycopg2()) return
  const root = userInfo().uid === 0
  const sudo = root ? false : await run("sudo", ["-n", "true"]).then(() => true, () => false)
  if (!root && !sudo) {
    throw new Error(`the whole-loop baseline (seed_full.py) needs Debian's python3-psycopg2: run \`sudo sh -c "${INSTALL_PSYCOPG2}"\`, then the bench again`)
  }
  log("installing python3-psycopg2 from Debian packages (seed_full.py needs it)")
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  const apt = (args: Array<string>) =>
    root ? run("apt-get", args, { env, maxBuffer: 1 << 24 }) : run("sudo", ["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", ...args], { maxBuffer: 1 << 24 })
  await apt(["install", "-y", "-qq", "python3-psycopg2"]).catch(() => apt(["update", "-qq"]).then(() => apt(["install", "-y", "-qq", "python3-psycopg2"])))
  if (!(await hasPsycopg2())) throw new Error(`python3-psycopg2 did not install: run \`${INSTALL_PSYCOPG2}\` as root`)
}

export interface Mailbox {
  readonly port: number
  readonly user: string
  readonly password: string
}

export const fetchOnly = async (dir: string | undefined, box: Mailbox, limit: number): Promise<BaselineResult> => {
  const { stdout } = await run(PYTHON, [required(dir, "seed_imaplib.py"), "127.0.0.1", String(box.port), box.user, box.password, String(limit)], {
    maxBuffer: 1 << 20
  })
  return parseFetchOnly(stdout)
}

/** Takes the unread mail; it leaves it read. */
export const wholeLoop = async (dir: string | undefined, box: Mailbox, databaseUrl: string): Promise<BaselineResult> => {
  const { stdout } = await run(PYTHON, [required(dir, "seed_full.py"), "127.0.0.1", String(box.port), box.user, box.password, databaseUrl], {
    maxBuffer: 1 << 20
  })
  return parseWholeLoop(stdout)
}

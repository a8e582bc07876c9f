import { existsSync } from "node:fs"
import { execFileSync } from "node:child_process"

/** Integration tests need real servers: say which one is missing instead of skipping. */
export default function setup() {
  const missing: Array<string> = []
  if (!existsSync("/usr/sbin/dovecot")) missing.push("dovecot (apt-get install dovecot-imapd)")
  try {
    execFileSync("java", ["-version"], { stdio: "ignore" })
  } catch {
    missing.push("java 17 (apt-get install openjdk-17-jre-headless)")
  }
  if (missing.length > 0) {
    throw new Error(`integration tests need: ${missing.join(", ")}; test/run.sh installs them`)
  }
}

import * as Bus from "./Bus.js"
import * as Mailbox from "./Config.js"
import * as Mail from "./Mail.js"
import * as Mailboxes from "./Mailboxes.js"
import * as Replies from "./Replies.js"
import type { Setting } from "./Settings.js"
import * as Telemetry from "./Telemetry.js"

/** Every setting mailroom reads, by area: the one list that help, errors and the docs come from. */
export const allSettings: ReadonlyArray<Setting> = [
  ...Mailbox.settings,
  ...Mailboxes.settings,
  ...Mail.settings,
  ...Replies.settings,
  ...Bus.settings,
  ...Telemetry.settings
]

export const settingHelp = (name: string): string | undefined => allSettings.find((s) => s.name === name)?.help

const required = new Set(["GMAIL_SENDER_EMAIL", "GMAIL_SENDER_PASSWORD"])

/** Every setting as a commented .env file: what `mailroom settings` prints and .env.example holds. */
export const renderEnvExample = (): string =>
  [
    "# mailroom settings (node dist/main.js settings prints this file). Copy it to .env and fill in.",
    "# Only GMAIL_SENDER_EMAIL and GMAIL_SENDER_PASSWORD are required (or MAILBOXES_FILE, for several mailboxes); a commented line shows the default.",
    "",
    ...[...allSettings].sort((a, b) => a.name.localeCompare(b.name)).flatMap((s) => [
      `# ${s.help}`,
      required.has(s.name) ? `${s.name}=` : `# ${s.name}=${s.default ?? ""}`,
      ""
    ])
  ].join("\n")

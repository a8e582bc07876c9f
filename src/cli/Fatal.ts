import { ValidationError } from "@effect/cli"
import { Cause, ConfigError, Data, Effect, Option } from "effect"
import { settingHelp } from "../config/All.js"

/** mailroom will not run in this setup, for a reason the user must change. */
export class StartupRefused extends Data.TaggedError("StartupRefused")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** `--customer ADDRESS`: the address as the log keys it (trimmed, lower case), or a refusal naming the flag. */
export const customerArgument = (value: string): Effect.Effect<string, StartupRefused> =>
  /^[^@\s]+@[^@\s]+$/.test(value.trim())
    ? Effect.succeed(value.trim().toLowerCase())
    : new StartupRefused({ reason: `--customer takes an email address, not ${JSON.stringify(value)}` })

export interface Fatal {
  readonly line: string
  /** 2: fix the configuration; 1: a run that failed. */
  readonly exitCode: 1 | 2
}

const leaves = (error: ConfigError.ConfigError): Array<ConfigError.ConfigError> => {
  switch (error._op) {
    case "And":
    case "Or":
      return [...leaves(error.left), ...leaves(error.right)]
    default:
      return [error]
  }
}

const describeConfig = (error: ConfigError.ConfigError): string => {
  const leaf = leaves(error)[0]!
  const name = "path" in leaf ? leaf.path.join("_") : "configuration"
  const help = settingHelp(name)
  const problem = leaf._op === "MissingData" ? "is not set" : `is invalid (${"message" in leaf ? leaf.message : "bad value"})`
  return `${name} ${problem}${help ? `: ${help}` : ""} Set it in the environment or in .env.`
}

const configErrorOf = (error: unknown): ConfigError.ConfigError | undefined =>
  ConfigError.isConfigError(error) ? error : undefined

/** One line for a failure a user can act on; undefined for a bug, which deserves its full cause. */
export const describeFailure = (cause: Cause.Cause<unknown>): Fatal | undefined => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return undefined
  const error = failure.value
  const configError = configErrorOf(error)
  if (configError) return { line: describeConfig(configError), exitCode: 2 }
  // A command line @effect/cli refused (a missing argument, an unknown command): it has printed why.
  if (ValidationError.isValidationError(error)) return { line: "", exitCode: 2 }
  if (typeof error !== "object" || error === null || !("_tag" in error)) return undefined
  switch (error._tag) {
    case "StartupRefused":
    case "DataDirInUse":
    case "MailboxesFileInvalid":
    case "SecretKeyMismatch":
    case "DatabaseIsNewer":
    case "MigrationsPending":
    // A folder setting that names no folder on the server: a --once run stops here (a daemon retries).
    case "SentMailboxMissing":
    case "DraftsMailboxMissing":
    // The LLM refuses LLM_API_KEY or LLM_MODEL, or SMTP the From of answers: the mail stays
    // recorded, its answer waits for the fix.
    case "LlmRefused":
    case "SmtpSenderRefused":
      return { line: String((error as unknown as Error).message), exitCode: 2 }
    default:
      return { line: String((error as unknown as Error).message ?? error._tag), exitCode: 1 }
  }
}

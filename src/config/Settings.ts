import { Config, ConfigError, Duration, Either, Redacted } from "effect"

/**
 * Every environment variable mailroom reads, with the one-line help that `--help`, start-up errors,
 * `mailroom settings`, `.env.example` and the README's settings tables share.
 */
export interface Setting {
  readonly name: string
  readonly default?: string
  readonly help: string
}

/**
 * The settings of one area of src/config, in the order declared. Each area declares its settings
 * with its own list's `setting`, and All.ts joins the areas: the whole list is known as soon as
 * that one module is loaded, whatever else has been imported.
 */
export const settingList = () => {
  const all: Array<Setting> = []
  const setting = <A>(
    name: string,
    help: string,
    make: (name: string) => Config.Config<A>,
    fallback?: { readonly value: A; readonly shown?: string }
  ): Config.Config<A> => {
    // An empty default (an optional setting) is shown as none: "(default )" says nothing.
    const shown = fallback ? fallback.shown ?? String(fallback.value) : ""
    all.push({ name, help, ...(shown === "" ? {} : { default: shown }) })
    const config = make(name).pipe(Config.withDescription(help))
    return fallback ? Config.withDefault(config, fallback.value) : config
  }
  return { all: all as ReadonlyArray<Setting>, setting }
}

// Shapes that several settings share.

export const seconds = (name: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a whole number of seconds above 0", validation: (n) => n > 0 }),
    Config.map(Duration.seconds)
  )

export const positive = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: "Expected a whole number above 0", validation: (n) => n > 0 }))

export const splitList = (value: string) => value.split(",").map((s) => s.trim()).filter((s) => s.length > 0)

/** Comma-separated, blanks dropped: host:port lists, ids. */
export const list = (name: string) => Config.string(name).pipe(Config.map(splitList))

// Validated before it is mapped: a check after Config.map fails without the variable's name.
export const addressList = (name: string) =>
  Config.string(name).pipe(
    Config.validate({ message: "Expected comma-separated email addresses", validation: (value) => splitList(value).every((a) => a.includes("@")) }),
    Config.map((value) => splitList(value).map((item) => item.toLowerCase()))
  )

/** One email address, lower-cased. */
export const address = (name: string) =>
  Config.nonEmptyString(name).pipe(
    Config.validate({ message: "Expected an email address, e.g. help@example.com", validation: (value) => /^[^\s@]+@[^\s@]+$/.test(value.trim()) }),
    Config.map((value) => value.trim().toLowerCase())
  )

export const optional = (name: string) => Config.option(Config.nonEmptyString(name))

const isHttpUrl = (value: string) => {
  try {
    const { protocol } = new URL(value.trim())
    return protocol === "http:" || protocol === "https:"
  } catch {
    return false
  }
}

/**
 * An http:// or https:// URL. Without the check, "localhost:4318" (no scheme) was taken and failed
 * only at the first request. The message does not repeat the value: it may hold credentials.
 */
export const httpUrl = (name: string) =>
  Config.nonEmptyString(name).pipe(
    Config.validate({ message: "Expected an http:// or https:// URL, e.g. http://localhost:4318", validation: isHttpUrl }),
    Config.map((value) => value.trim())
  )

export const optionalHttpUrl = (name: string) => Config.option(httpUrl(name))

export const optionalSecret = (name: string) => Config.option(Config.redacted(name))

/** true: TLS from the first byte; "starttls": plain, then upgraded, or no connection at all; false: plain throughout. */
export type TlsMode = boolean | "starttls"

/** Also the spellings Config.boolean took (yes/no, on/off, 1/0), so that older .env files keep their meaning. */
export const tlsMode = (name: string): Config.Config<TlsMode> =>
  Config.string(name).pipe(
    Config.mapOrFail((text): Either.Either<TlsMode, ConfigError.ConfigError> => {
      const value = text.trim().toLowerCase()
      if (["true", "yes", "on", "1"].includes(value)) return Either.right(true)
      if (["false", "no", "off", "0"].includes(value)) return Either.right(false)
      if (value === "starttls") return Either.right("starttls" as const)
      return Either.left(ConfigError.InvalidData([], `Expected true, starttls or false but received ${JSON.stringify(text)}`))
    })
  )

/** Gmail shows app passwords in groups of four ("abcd efgh ijkl mnop"); the spaces are not part of it. */
export const appPassword = (name: string) =>
  // Config.string, then Redacted: a validation on Config.redacted loses the variable's name.
  Config.string(name).pipe(
    Config.validate({ message: "Expected a non-empty password", validation: (value) => value.trim().length > 0 }),
    Config.map((value) => Redacted.make(value.replace(/\s+/g, "")))
  )

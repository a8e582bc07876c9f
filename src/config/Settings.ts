import { Config } from "effect"

/**
 * Every environment variable mailroom reads, with the one-line help that `--help`, start-up errors
 * and the README's settings table share.
 */
export interface Setting {
  readonly name: string
  readonly default?: string
  readonly help: string
}

const registry = new Map<string, Setting>()

export const settings = (): ReadonlyArray<Setting> => [...registry.values()]

export const settingHelp = (name: string): string | undefined => registry.get(name)?.help

export const setting = <A>(
  name: string,
  help: string,
  make: (name: string) => Config.Config<A>,
  fallback?: { readonly value: A; readonly shown?: string }
): Config.Config<A> => {
  registry.set(name, {
    name,
    help,
    ...(fallback ? { default: fallback.shown ?? String(fallback.value) } : {})
  })
  const config = make(name).pipe(Config.withDescription(help))
  return fallback ? Config.withDefault(config, fallback.value) : config
}

const required = new Set(["GMAIL_SENDER_EMAIL", "GMAIL_SENDER_PASSWORD"])

/** Every setting as a commented .env file: what `mailroom settings` prints and .env.example holds. */
export const renderEnvExample = (): string =>
  [
    "# mailroom settings (node dist/main.js settings prints this file). Copy it to .env and fill in.",
    "# Only GMAIL_SENDER_EMAIL and GMAIL_SENDER_PASSWORD are required; a commented line shows the default.",
    "",
    ...[...settings()].sort((a, b) => a.name.localeCompare(b.name)).flatMap((s) => [
      `# ${s.help}`,
      required.has(s.name) ? `${s.name}=` : `# ${s.name}=${s.default ?? ""}`,
      ""
    ])
  ].join("\n")

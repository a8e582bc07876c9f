import { execFile } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"
import "../../src/Layers.js"
import "../../src/bus/KafkaBus.js"
import "../../src/telemetry/Logging.js"
import "../../src/telemetry/Tracing.js"
import { allSettings, renderEnvExample } from "../../src/config/All.js"
import { imageMemorySettings } from "../../bench/util.js"
import "../../src/telemetry/Health.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const read = (file: string) => readFileSync(join(root, file), "utf8")

const collector = parse(read("otel-collector.yaml"))
const compose = parse(read("docker-compose.yml"))

describe("otel-collector.yaml", () => {
  it("receives OTLP over gRPC and HTTP, batches, and exports to Jaeger and the debug log", () => {
    expect(Object.keys(collector.receivers.otlp.protocols).sort()).toEqual(["grpc", "http"])
    expect(collector.exporters["otlp/jaeger"].endpoint).toMatch(/^jaeger:4317$/)
    expect(collector.exporters).toHaveProperty("debug")
    expect(collector.processors).toHaveProperty("batch")
  })

  it("every pipeline names receivers, processors and exporters that are defined", () => {
    const pipelines = Object.entries(collector.service.pipelines) as Array<[string, Record<string, Array<string>>]>
    expect(pipelines.map(([name]) => name)).toContain("traces")
    for (const [, pipeline] of pipelines) {
      for (const kind of ["receivers", "processors", "exporters"] as const) {
        for (const name of pipeline[kind] ?? []) expect(collector[kind], `${kind}: ${name}`).toHaveProperty([name])
      }
    }
    expect(collector.service.pipelines.traces.exporters).toContain("otlp/jaeger")
  })
})

describe("docker-compose.yml", () => {
  const services = compose.services
  const env = services.mailroom.environment as Record<string, string>

  it("runs postgres, kafka, the collector, jaeger (UI on 16686) and mailroom built from the Dockerfile", () => {
    expect(Object.keys(services).sort()).toEqual(["jaeger", "kafka", "mailroom", "otel-collector", "postgres"])
    expect(services.jaeger.ports).toContain("127.0.0.1:16686:16686")
    expect(existsSync(join(root, services.mailroom.build.context, services.mailroom.build.dockerfile))).toBe(true)
    expect(services.mailroom.env_file).toBe(".env")
    for (const volume of services["otel-collector"].volumes as Array<string>) {
      expect(existsSync(join(root, volume.split(":")[0]!))).toBe(true)
    }
    expect(services["otel-collector"].command.join(" ")).toContain(
      (services["otel-collector"].volumes as Array<string>)[0]!.split(":")[1]
    )
  })

  it("points mailroom at the services it declares, with settings mailroom knows", () => {
    const known = new Set(allSettings.map((s) => s.name))
    for (const name of Object.keys(env)) expect(known, name).toContain(name)
    const otlp = new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT!)
    expect(Object.keys(services)).toContain(otlp.hostname)
    expect(collector.receivers.otlp.protocols.http.endpoint).toContain(`:${otlp.port}`)
    const database = new URL(env.DATABASE_URL!)
    expect(database.hostname).toBe("postgres")
    expect(database.username).toBe(services.postgres.environment.POSTGRES_USER)
    expect(database.password).toBe(services.postgres.environment.POSTGRES_PASSWORD)
    expect(database.pathname).toBe(`/${services.postgres.environment.POSTGRES_DB}`)
    const [kafkaHost, kafkaPort] = env.KAFKA_BROKERS!.split(":")
    expect(kafkaHost).toBe("kafka")
    expect(services.kafka.environment.KAFKA_ADVERTISED_LISTENERS).toContain(`kafka:${kafkaPort}`)
    expect(Object.keys(services.mailroom.depends_on).sort()).toEqual(["kafka", "otel-collector", "postgres"])
  })
})

/** Runs a health check command (["node", "-e", script]) against a server answering `status` on /healthz. */
const runHealthCheck = async (command: ReadonlyArray<string>, status: number) => {
  const paths: Array<string> = []
  const server = createServer((request, response) => {
    paths.push(request.url ?? "")
    response.writeHead(request.url === "/healthz" ? status : 404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  try {
    const [file, ...args] = command
    const code = await new Promise<number>((resolve) =>
      execFile(file === "node" ? process.execPath : file!, args, {
        env: { ...process.env, HEALTH_PORT: String((server.address() as AddressInfo).port) },
        timeout: 10_000
      }, (error) => resolve(error ? Number(error.code ?? 1) : 0))
    )
    return { code, paths }
  } finally {
    server.close()
  }
}

describe("docker-compose.yml ports and health", () => {
  const services = compose.services as Record<string, { ports?: Array<string>; environment?: Record<string, string>; healthcheck?: { test: Array<string> } }>

  it("publishes every port (Kafka, OTLP, Jaeger, health) on 127.0.0.1 only", () => {
    const published = Object.values(services).flatMap((service) => service.ports ?? [])
    expect(published.length).toBeGreaterThanOrEqual(5)
    for (const port of published) expect(port, port).toMatch(/^127\.0\.0\.1:\d+:\d+$/)
    const hostPorts = published.map((port) => port.split(":")[1])
    expect(hostPorts).toEqual(expect.arrayContaining(["9092", "4317", "4318", "16686", services.mailroom!.environment!.HEALTH_PORT]))
  })

  it("mailroom listens for health on all of its container's addresses, on the port it publishes", () => {
    const env = services.mailroom!.environment!
    expect(env.HEALTH_HOST).toBe("0.0.0.0")
    expect(services.mailroom!.ports).toEqual([`127.0.0.1:${env.HEALTH_PORT}:${env.HEALTH_PORT}`])
  })

  it("its healthcheck asks /healthz and fails when that answers 503", async () => {
    const test = services.mailroom!.healthcheck!.test
    expect(test[0]).toBe("CMD")
    expect(await runHealthCheck(test.slice(1), 200)).toEqual({ code: 0, paths: ["/healthz"] })
    expect((await runHealthCheck(test.slice(1), 503)).code).not.toBe(0)
  })
})

describe("Dockerfile", () => {
  const dockerfile = read("Dockerfile")

  it("sets HEALTH_PORT, exposes it, and its HEALTHCHECK asks /healthz with Node's fetch (no curl in node:20-slim)", async () => {
    const port = dockerfile.match(/^ENV HEALTH_PORT=(\d+)$/m)?.[1]
    expect(port).toBeDefined()
    expect(dockerfile).toMatch(new RegExp(`^EXPOSE ${port}$`, "m"))
    expect(compose.services.mailroom.environment.HEALTH_PORT).toBe(port)
    const joined = dockerfile.replace(/\\\n\s*/g, " ")
    const command = JSON.parse(joined.match(/^HEALTHCHECK .*CMD (\[.*\])$/m)![1]!) as Array<string>
    expect(command.slice(0, 2)).toEqual(["node", "-e"])
    expect(await runHealthCheck(command, 200)).toEqual({ code: 0, paths: ["/healthz"] })
    expect((await runHealthCheck(command, 503)).code).not.toBe(0)
    expect(dockerfile.indexOf("HEALTHCHECK")).toBeGreaterThan(dockerfile.lastIndexOf("FROM "))
  })

  it("is multi-stage on slim Node 20, runs as a non-root user, and starts node dist/main.js", () => {
    expect(dockerfile.match(/^FROM node:20-slim/gm)).toHaveLength(2)
    expect(dockerfile).toMatch(/^USER node$/m)
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/main.js"\]$/m)
    for (const [, source] of dockerfile.matchAll(/^COPY (?!--from)(\S+)/gm)) {
      expect(existsSync(join(root, source!)), source).toBe(true)
    }
  })

  it("sets the memory settings that `npm run bench` measures as the image's row", () => {
    expect(imageMemorySettings(dockerfile)).toEqual({
      MALLOC_MMAP_THRESHOLD_: "2097152",
      NODE_OPTIONS: "--max-semi-space-size=4"
    })
    expect(imageMemorySettings("FROM x\nENV A=1 NODE_OPTIONS=\"--max-semi-space-size=2 --max-old-space-size=200\"\n")).toEqual({
      NODE_OPTIONS: "--max-semi-space-size=2 --max-old-space-size=200"
    })
  })
})

describe("documentation of settings", () => {
  it(".env.example is what `mailroom settings` prints", () => {
    expect(read(".env.example").trim()).toBe(renderEnvExample().trim())
  })

  it("the README's settings tables name every setting", () => {
    const readme = read("README.md")
    expect(allSettings.map((s) => s.name).filter((name) => !readme.includes(`\`${name}\``))).toEqual([])
  })
})

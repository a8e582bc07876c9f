import { execFile, spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { Context, Effect, Layer } from "effect"
import kafkajs from "kafkajs"
import { freePort } from "./dovecot.js"

const run = promisify(execFile)
const fetchScript = fileURLToPath(new URL("./kafka/fetch.sh", import.meta.url))

export interface KafkaBroker {
  readonly brokers: string
  readonly port: number
  readonly dataDir: string
  /** SIGTERM, then wait for the JVM to exit. */
  stop(): Promise<void>
  /** SIGKILL. */
  kill(): Promise<void>
  /** Same port and data, ready again. */
  restart(): Promise<void>
  /** Stop and remove the data. */
  cleanup(): Promise<void>
}

const jvm = ["-Xmx512m", "-Xms128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]

const properties = (port: number, controller: number, dataDir: string) => `
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${controller}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=${dataDir}/log
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.segment.bytes=1048576
`

const log4j = (dir: string) => `
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=${dir}/broker.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=%d %p %c: %m%n
`

const ready = async (brokers: string, child: ChildProcess, dir: string) => {
  const kafka = new kafkajs.Kafka({ brokers: [brokers], logLevel: kafkajs.logLevel.NOTHING, retry: { retries: 0 } })
  const deadline = Date.now() + 90_000
  while (true) {
    const admin = kafka.admin()
    try {
      await admin.connect()
      await admin.listTopics()
      await admin.disconnect()
      return
    } catch {
      await admin.disconnect().catch(() => undefined)
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      const log = await readFile(join(dir, "broker.log"), "utf8").catch(() => "")
      throw new Error(`Kafka did not start on ${brokers}:\n${log.split("\n").slice(-20).join("\n")}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

/** A single-node KRaft broker from Maven Central's kafka_2.13 jars, on free loopback ports. */
export const startKafka = async (options: { readonly port?: number; readonly dataDir?: string } = {}): Promise<KafkaBroker> => {
  const { stdout } = await run("bash", [fetchScript], { maxBuffer: 1 << 20 }).catch((error: Error & { stderr?: string }) => {
    throw new Error(`Kafka is not available: ${error.stderr?.trim() || error.message}`)
  })
  const classpath = `${stdout.trim()}/*`
  const dir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "mailroom-kafka-")))
  const port = options.port ?? (await freePort())
  // A broker restarted on its old port finds that port free too: the controller must not take it.
  let controller = await freePort()
  while (controller === port) controller = await freePort()
  await writeFile(join(dir, "server.properties"), properties(port, controller, dir))
  await writeFile(join(dir, "log4j2.properties"), log4j(dir))
  const java = ["-cp", classpath, `-Dlog4j2.configurationFile=${join(dir, "log4j2.properties")}`]
  await run("java", [...java, "kafka.tools.StorageTool", "format", "-t", randomUUID().replace(/-/g, "").slice(0, 22), "-c", join(dir, "server.properties"), "--standalone"])
    .catch(async () => {
      // Already formatted (a restart over the same data): that is fine.
    })
  const brokers = `127.0.0.1:${port}`
  let child: ChildProcess

  const launch = async () => {
    child = spawn("java", [...jvm, ...java, "kafka.Kafka", join(dir, "server.properties")], { stdio: "ignore" })
    await ready(brokers, child, dir)
  }
  const halt = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once("exit", resolve))
    child.kill(signal)
    await exited
  }

  await launch()
  return {
    brokers,
    port,
    dataDir: dir,
    stop: () => halt("SIGTERM"),
    kill: () => halt("SIGKILL"),
    restart: async () => {
      await halt("SIGTERM")
      await launch()
    },
    cleanup: async () => {
      await halt("SIGKILL")
      await rm(dir, { recursive: true, force: true })
    }
  }
}

export const KafkaResource = (options?: Parameters<typeof startKafka>[0]) =>
  Effect.acquireRelease(Effect.promise(() => startKafka(options)), (broker) => Effect.promise(() => broker.cleanup()))

/** A Kafka broker for a suite, for `layer(KafkaServer.layer(options))`. */
export class KafkaServer extends Context.Tag("test/KafkaServer")<KafkaServer, KafkaBroker>() {
  static readonly layer = (options?: Parameters<typeof startKafka>[0]) => Layer.scoped(KafkaServer, KafkaResource(options))
}

/** A record as the broker holds it: a tombstone is a null value, not the JSON `null`. */
export interface RawRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly key: string | null
  /** The value as text; null for a tombstone. */
  readonly value: string | null
  readonly headers: Record<string, string>
}

/** Reads a topic from the beginning, every partition, each record as `read` makes it, until `enough` says so (60 s at most). */
export const consumeRecords = async <T>(
  brokers: string,
  topic: string,
  read: (record: RawRecord) => T,
  enough: (records: ReadonlyArray<T>) => boolean
): Promise<Array<T>> => {
  const kafka = new kafkajs.Kafka({ brokers: [brokers], logLevel: kafkajs.logLevel.NOTHING })
  const consumer = kafka.consumer({ groupId: `test-${topic}-${Math.random()}` })
  const records: Array<T> = []
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not enough with ${records.length} records on ${topic}`)), 60_000)
    void consumer.run({
      eachMessage: async ({ message, partition }) => {
        records.push(read({
          topic,
          partition,
          offset: BigInt(message.offset),
          key: message.key === null ? null : message.key.toString(),
          value: message.value === null ? null : message.value.toString(),
          headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]))
        }))
        if (enough(records)) {
          clearTimeout(timer)
          resolve()
        }
      }
    })
  })
  try {
    await done
  } finally {
    await consumer.disconnect()
  }
  return records
}

/** Records on a topic so far: the sum of its partitions' end offsets. */
export const topicSize = (topic: string) =>
  Effect.flatMap(KafkaServer, (broker) => Effect.promise(async () => {
    const admin = new kafkajs.Kafka({ brokers: [broker.brokers], logLevel: kafkajs.logLevel.NOTHING }).admin()
    await admin.connect()
    try {
      return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0)
    } finally {
      await admin.disconnect()
    }
  }))

import { setFlagsFromString } from "node:v8"

/**
 * V8's optimizing compiler (TurboFan) inlines up to 920 bytes of bytecode into each function it
 * optimizes. A pass over a mailbox has about 500 functions optimized while it runs, on V8's helper
 * threads, beside PostgreSQL and Dovecot on the same cores: 2.0–2.4 s of compiling for 6,000 small
 * mails, a third or more of mailroom's CPU for them. With 150 those compiles take a fifth less, and
 * the code they make is about as fast: over alternating runs a pass over the 6,000 small mails used
 * 7–9% less CPU, and over the 10,000-mail backlog about 5% (docs/performance.md, 2026-12-07). Each
 * compile reads the flag, so it is set before the first.
 */
setFlagsFromString("--max-inlined-bytecode-size-cumulative=150")

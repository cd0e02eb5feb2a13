/**
 * `rpcudp serve` ended by SIGINT/SIGTERM after calls, with a second signal
 * while closing and with stdout gone (process.exit with the socket open), on
 * each backend and native nativeIo: every process must end the way a clean
 * shutdown can (see scripts/signal-cycles.cjs, which runs 1 000 per mode).
 * Uses dist/ (built by scripts/build.sh before the suite).
 */
import test from 'ava'

const { runCycles, MODES } = require('../scripts/signal-cycles.cjs')

/** Each of the six variants twice; the full count is the script's job, not CI's. */
const CYCLES = 12

if (process.platform !== 'win32') {
  for (const mode of Object.keys(MODES)) {
    test.serial(`serve ends cleanly on signals, ${mode}`, async (t) => {
      const r = await runCycles(mode, CYCLES)
      t.deepEqual(r.failures, [], JSON.stringify(r.endings))
      t.is(Object.values(r.endings as Record<string, number>).reduce((a, b) => a + b, 0), CYCLES)
    })
  }
}

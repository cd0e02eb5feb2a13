// Codec micro-benchmark: rpcudp's msgpack codec (src/codec.ts) against msgpackr,
// on the bodies a DHT sends. Run: node --import tsx bench/codec.cjs
// msgpackr is configured as close to rpcudp's mapping as it goes (no records,
// maps as Map, 64-bit ints as BigInt when needed); it still cannot match it
// exactly (see src/codec.ts), so this only answers "is ours slower?".
const { Packr, Unpackr } = require('msgpackr')
const { Encoder, Decoder } = require('../src/codec.ts')

const id = Buffer.alloc(20, 7)
const cases = {
  'request [echo, [32-byte buffer]]': ['echo', [Buffer.alloc(32, 1)]],
  'find_node reply: 8 × [id, host, port]': Array.from({ length: 8 }, (_, i) => [id, `10.0.0.${i}`, 6881 + i]),
  'mixed: ints, floats, strings, nested map': { a: 1, b: -70000, c: 1.5, d: 'héllo', e: [true, null, 2 ** 40], f: { g: 'x'.repeat(40) } },
}

const encoder = new Encoder(65000)
const decoder = new Decoder()
const packr = new Packr({ useRecords: false, variableMapSize: true })
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' })

function time(fn, ms = 400) {
  for (let i = 0; i < 20000; i++) fn() // warm-up
  let n = 0
  const end = performance.now() + ms
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) fn()
    n += 1000
  }
  return (ms * 1e6) / n // ns per op
}

console.log('| value | rpcudp encode ns | msgpackr encode ns | rpcudp decode ns | msgpackr decode ns |')
console.log('|---|---:|---:|---:|---:|')
for (const [name, value] of Object.entries(cases)) {
  const len = encoder.encode(value)
  const bytes = Buffer.from(encoder.bytes.subarray(0, len))
  const packed = packr.pack(value)
  const row = [
    time(() => encoder.encode(value)),
    time(() => packr.pack(value)),
    time(() => decoder.decode(bytes, 0, bytes.length)),
    time(() => unpackr.unpack(packed)),
  ]
  console.log(`| ${name} | ${row.map((x) => x.toFixed(0)).join(' | ')} |`)
}

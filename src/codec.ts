/**
 * The one msgpack codec both backends use, so their value mapping cannot drift.
 *
 * Hand-written rather than msgpackr/@msgpack/msgpack because neither can be
 * configured to the mapping Python peers need (docs/PROTOCOL.md): msgpackr packs
 * integers past 32 bits as float64 and -0 as int 0, packs `undefined` as an ext,
 * renames a `__proto__` key and stringifies integer map keys; both accept values
 * (Date, Set, class instances) that we must refuse with a typed error. Writing
 * into one preallocated buffer also makes encoding allocation-free
 * (bench/codec.cjs measures it against msgpackr).
 */
import { RPCEncodeError, RPCSizeError } from './errors'

/** Containers nested deeper than this are refused on encode and dropped on receive. */
export const MAX_DEPTH = 32

/** Why an incoming body was rejected; the same names the Rust core counts. */
export type DecodeReason = 'malformed' | 'badUtf8' | 'tooDeep' | 'unsupportedType'

export class DecodeFailure extends Error {
  constructor(readonly reason: DecodeReason) {
    super(reason)
  }
}

const TWO32 = 2 ** 32
const INT64_MIN = -(2n ** 63n)
const UINT64_END = 2n ** 64n
// ignoreBOM: a leading U+FEFF is part of the string, not a byte-order mark to strip
const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') return typeof value
  return value.constructor?.name ?? 'object with a custom prototype'
}

/**
 * A value already in msgpack form, written verbatim by Encoder.encode: a
 * Kademlia answer is the same few contacts over and over, so each contact
 * keeps its encoded bytes and an answer is their concatenation. The bytes
 * must be exactly one well-formed msgpack value; nothing re-checks them.
 */
export class PreEncoded {
  constructor(readonly bytes: Uint8Array) {}
}

/**
 * Encodes into a reusable buffer whose size is the body limit: a value that
 * would not fit is refused as soon as it overflows, never buffered whole.
 */
export class Encoder {
  private buf: Buffer
  private view: DataView
  private pos = 0
  private limit = 0
  /** Set while a value is being written: a getter that calls out mid-encode must not be handed this encoder (idle). */
  private active = false

  constructor(readonly maxBody: number) {
    this.buf = Buffer.allocUnsafe(maxBody + 16)
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
  }

  /** The bytes written by the last encode; valid until the next encode. */
  get bytes(): Buffer {
    return this.buf
  }

  /** A request body `[name, args]`; returns its length in `bytes`. */
  encodeRequest(name: string, args: readonly unknown[]): number {
    this.begin()
    try {
      this.buf[this.pos++] = 0x92
      this.writeString(name)
      this.writeArray(args, 1)
      return this.pos
    } finally {
      this.active = false
    }
  }

  /**
   * An error-reply body `[code, message]`, both cut on a character boundary to
   * fit maxBody exactly as the Rust core's frame_error cuts them, so both
   * backends send the same bytes. Returns its length in `bytes`.
   */
  encodeErrorReply(code: string, message: string): number {
    const budget = this.maxBody - 1 // the array header
    const c = fitUtf8(code, budget - 1)
    const cLen = Buffer.byteLength(c)
    return this.encode([c, fitUtf8(message, budget - strHeaderLength(cLen) - cLen)])
  }

  /** Any value (a reply body); returns its length in `bytes`. */
  encode(value: unknown): number {
    this.begin()
    try {
      this.write(value, 0)
      return this.pos
    } finally {
      this.active = false
    }
  }

  /** True while an encode is under way (a getter of the value being written is running). */
  get busy(): boolean {
    return this.active
  }

  private begin() {
    this.active = true
    this.pos = 0
    this.limit = this.maxBody
  }

  private ensure(n: number) {
    if (this.pos + n > this.limit) throw new RPCSizeError(this.pos + n, this.limit)
  }

  private write(value: unknown, depth: number): void {
    switch (typeof value) {
      case 'number':
        if (Number.isSafeInteger(value) && !Object.is(value, -0)) this.writeInt(value)
        else this.writeFloat(value)
        return
      case 'string':
        return this.writeString(value)
      case 'boolean':
        this.ensure(1)
        this.buf[this.pos++] = value ? 0xc3 : 0xc2
        return
      case 'undefined':
        this.ensure(1)
        this.buf[this.pos++] = 0xc0
        return
      case 'bigint':
        return this.writeBigInt(value)
      case 'object': {
        if (value === null) {
          this.ensure(1)
          this.buf[this.pos++] = 0xc0
          return
        }
        if (value instanceof Uint8Array) return this.writeBin(value)
        if (value instanceof PreEncoded) return this.writeRaw(value.bytes)
        // `depth` counts the containers around this value; the decoder counts the same way.
        if (depth >= MAX_DEPTH) throw new RPCEncodeError(`value nests deeper than ${MAX_DEPTH} containers`)
        if (Array.isArray(value)) return this.writeArray(value, depth)
        if (value instanceof Map) return this.writeMap(value, depth)
        const proto = Object.getPrototypeOf(value)
        if (proto === Object.prototype || proto === null) return this.writeObject(value as Record<string, unknown>, depth)
      }
    }
    throw new RPCEncodeError(`cannot encode a ${describe(value)}; see the value mapping in docs/PROTOCOL.md`)
  }

  // Same widths as Python's umsgpack, so a value packs to the same bytes on both sides.
  private writeInt(v: number) {
    const b = this.buf
    if (v >= 0) {
      if (v < 0x80) {
        this.ensure(1)
        b[this.pos++] = v
      } else if (v < 0x100) {
        this.ensure(2)
        b[this.pos++] = 0xcc
        b[this.pos++] = v
      } else if (v < 0x10000) {
        this.ensure(3)
        b[this.pos++] = 0xcd
        this.view.setUint16(this.pos, v)
        this.pos += 2
      } else if (v < TWO32) {
        this.ensure(5)
        b[this.pos++] = 0xce
        this.view.setUint32(this.pos, v)
        this.pos += 4
      } else {
        this.ensure(9)
        b[this.pos++] = 0xcf
        this.view.setUint32(this.pos, Math.floor(v / TWO32))
        this.view.setUint32(this.pos + 4, v >>> 0)
        this.pos += 8
      }
    } else if (v >= -32) {
      this.ensure(1)
      b[this.pos++] = 0x100 + v
    } else if (v >= -0x80) {
      this.ensure(2)
      b[this.pos++] = 0xd0
      this.view.setInt8(this.pos++, v)
    } else if (v >= -0x8000) {
      this.ensure(3)
      b[this.pos++] = 0xd1
      this.view.setInt16(this.pos, v)
      this.pos += 2
    } else if (v >= -0x80000000) {
      this.ensure(5)
      b[this.pos++] = 0xd2
      this.view.setInt32(this.pos, v)
      this.pos += 4
    } else {
      this.ensure(9)
      b[this.pos++] = 0xd3
      const hi = Math.floor(v / TWO32)
      this.view.setInt32(this.pos, hi)
      this.view.setUint32(this.pos + 4, v - hi * TWO32)
      this.pos += 8
    }
  }

  private writeBigInt(v: bigint) {
    if (v < INT64_MIN || v >= UINT64_END) throw new RPCEncodeError(`BigInt ${v} is outside the 64-bit integer range`)
    if (v >= -0x80000000n && v < 0x100000000n) return this.writeInt(Number(v))
    this.ensure(9)
    this.buf[this.pos++] = v < 0n ? 0xd3 : 0xcf
    this.view.setBigUint64(this.pos, BigInt.asUintN(64, v))
    this.pos += 8
  }

  private writeFloat(v: number) {
    this.ensure(9)
    this.buf[this.pos++] = 0xcb
    this.view.setFloat64(this.pos, v)
    this.pos += 8
  }

  private writeString(s: string) {
    // Short strings: one pass that both measures and checks for lone surrogates.
    let len = 0
    let ascii = true
    if (s.length < 64) {
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i)
        if (c < 0x80) len += 1
        else {
          ascii = false
          if (c < 0x800) len += 2
          else if (c >= 0xd800 && c <= 0xdbff) {
            const d = s.charCodeAt(i + 1)
            if (!(d >= 0xdc00 && d <= 0xdfff)) throw loneSurrogate()
            len += 4
            i++
          } else if (c >= 0xdc00 && c <= 0xdfff) throw loneSurrogate()
          else len += 3
        }
      }
    } else {
      if (!s.isWellFormed()) throw loneSurrogate()
      ascii = false
      len = Buffer.byteLength(s, 'utf8')
    }
    this.writeHeader(len, 0xa0, 32, 0xd9, 0xda)
    this.ensure(len)
    if (ascii) {
      const b = this.buf
      for (let i = 0; i < len; i++) b[this.pos + i] = s.charCodeAt(i)
    } else this.buf.write(s, this.pos, len, 'utf8')
    this.pos += len
  }

  private writeBin(v: Uint8Array) {
    this.writeHeader(v.length, -1, 0, 0xc4, 0xc5)
    this.ensure(v.length)
    this.buf.set(v, this.pos)
    this.pos += v.length
  }

  private writeRaw(v: Uint8Array) {
    this.ensure(v.length)
    this.buf.set(v, this.pos)
    this.pos += v.length
  }

  private writeArray(v: readonly unknown[], depth: number) {
    this.writeHeader(v.length, 0x90, 16, -1, 0xdc)
    for (let i = 0; i < v.length; i++) this.write(v[i], depth + 1)
  }

  private writeMap(v: Map<unknown, unknown>, depth: number) {
    this.writeHeader(v.size, 0x80, 16, -1, 0xde)
    for (const [k, x] of v) {
      this.write(k, depth + 1)
      this.write(x, depth + 1)
    }
  }

  private writeObject(v: Record<string, unknown>, depth: number) {
    const keys = Object.keys(v)
    this.writeHeader(keys.length, 0x80, 16, -1, 0xde)
    for (const k of keys) {
      this.writeString(k)
      this.write(v[k], depth + 1)
    }
  }

  /**
   * Length headers: the fix form below `fixLimit` (when `fix` >= 0), the 8-bit
   * form `code8` (when >= 0: arrays and maps have none), then `code16` and the
   * 32-bit form that follows it.
   */
  private writeHeader(n: number, fix: number, fixLimit: number, code8: number, code16: number) {
    const b = this.buf
    if (fix >= 0 && n < fixLimit) {
      this.ensure(1)
      b[this.pos++] = fix | n
    } else if (code8 >= 0 && n < 0x100) {
      this.ensure(2)
      b[this.pos++] = code8
      b[this.pos++] = n
    } else if (n < 0x10000) {
      this.ensure(3)
      b[this.pos++] = code16
      this.view.setUint16(this.pos, n)
      this.pos += 2
    } else {
      this.ensure(5)
      b[this.pos++] = code16 + 1
      this.view.setUint32(this.pos, n)
      this.pos += 4
    }
  }
}

const sharedEncoders = new Map<number, Encoder>()

/**
 * The encoder of this thread for bodies of at most `maxBody` bytes. Every
 * protocol and transport encodes through it: an encode is synchronous and its
 * bytes are copied out (framed into the socket's outbox or a datagram) before
 * the next one starts, so one buffer serves them all, where one each cost a
 * DHT of 10 000 nodes 8 KiB a node. Users keep it and take it through
 * `idle()` each time.
 */
export function sharedEncoder(maxBody: number): Encoder {
  let encoder = sharedEncoders.get(maxBody)
  if (encoder === undefined) sharedEncoders.set(maxBody, (encoder = new Encoder(maxBody)))
  return encoder
}

/** `encoder`, unless a getter of the value it is writing is encoding something itself: that nested encode gets an encoder of its own. */
export function idle(encoder: Encoder): Encoder {
  return encoder.busy ? new Encoder(encoder.maxBody) : encoder
}

/** Bytes of the header writeString puts before a string of `n` UTF-8 bytes. */
function strHeaderLength(n: number): number {
  return n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5
}

/** The longest prefix of `s`, cut on a character boundary, whose msgpack str form fits in `budget` bytes. */
function fitUtf8(s: string, budget: number): string {
  const bytes = Buffer.from(s)
  let len = Math.min(bytes.length, Math.max(0, budget - 1))
  while (len > 0 && strHeaderLength(len) + len > budget) len--
  while (len > 0 && len < bytes.length && (bytes[len] & 0xc0) === 0x80) len--
  return bytes.toString('utf8', 0, len)
}

function loneSurrogate() {
  return new RPCEncodeError('string contains a lone UTF-16 surrogate, which has no UTF-8 form')
}

/**
 * Decodes exactly one value spanning [start, end), validating as it goes:
 * every declared length is checked against the bytes present before anything
 * is allocated, nesting is bounded, strings must be valid UTF-8, ext types are
 * refused, trailing bytes are an error.
 */
export class Decoder {
  private buf: Buffer = Buffer.alloc(0)
  private view = new DataView(this.buf.buffer)
  private pos = 0
  private end = 0

  decode(buf: Buffer, start: number, end: number): unknown {
    if (buf !== this.buf) {
      this.buf = buf
      this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    }
    this.pos = start
    this.end = end
    const value = this.read(0)
    if (this.pos !== end) throw new DecodeFailure('malformed')
    return value
  }

  private need(n: number) {
    if (n > this.end - this.pos) throw new DecodeFailure('malformed')
  }

  private read(depth: number): unknown {
    this.need(1)
    const t = this.buf[this.pos++]
    if (t < 0x80) return t
    if (t >= 0xe0) return t - 0x100
    if (t < 0x90) return this.readMap(t & 0x0f, depth)
    if (t < 0xa0) return this.readArray(t & 0x0f, depth)
    if (t < 0xc0) return this.readString(t & 0x1f)
    const v = this.view
    let p = this.pos
    switch (t) {
      case 0xc0: return null
      case 0xc2: return false
      case 0xc3: return true
      case 0xc4: this.need(1); return this.readBin(this.buf[this.pos++])
      case 0xc5: this.need(2); this.pos += 2; return this.readBin(v.getUint16(p))
      case 0xc6: this.need(4); this.pos += 4; return this.readBin(v.getUint32(p))
      case 0xca: this.need(4); this.pos += 4; return v.getFloat32(p)
      case 0xcb: this.need(8); this.pos += 8; return v.getFloat64(p)
      case 0xcc: this.need(1); return this.buf[this.pos++]
      case 0xcd: this.need(2); this.pos += 2; return v.getUint16(p)
      case 0xce: this.need(4); this.pos += 4; return v.getUint32(p)
      case 0xcf: {
        this.need(8)
        this.pos += 8
        const n = v.getUint32(p) * TWO32 + v.getUint32(p + 4)
        return n <= Number.MAX_SAFE_INTEGER ? n : v.getBigUint64(p)
      }
      case 0xd0: this.need(1); this.pos += 1; return v.getInt8(p)
      case 0xd1: this.need(2); this.pos += 2; return v.getInt16(p)
      case 0xd2: this.need(4); this.pos += 4; return v.getInt32(p)
      case 0xd3: {
        this.need(8)
        this.pos += 8
        const n = v.getInt32(p) * TWO32 + v.getUint32(p + 4)
        return Number.isSafeInteger(n) ? n : v.getBigInt64(p)
      }
      case 0xd9: this.need(1); return this.readString(this.buf[this.pos++])
      case 0xda: this.need(2); this.pos += 2; return this.readString(v.getUint16(p))
      case 0xdb: this.need(4); this.pos += 4; return this.readString(v.getUint32(p))
      case 0xdc: this.need(2); this.pos += 2; return this.readArray(v.getUint16(p), depth)
      case 0xdd: this.need(4); this.pos += 4; return this.readArray(v.getUint32(p), depth)
      case 0xde: this.need(2); this.pos += 2; return this.readMap(v.getUint16(p), depth)
      case 0xdf: this.need(4); this.pos += 4; return this.readMap(v.getUint32(p), depth)
      case 0xc1: throw new DecodeFailure('malformed')
      default: throw new DecodeFailure('unsupportedType') // ext 0xc7-0xc9, fixext 0xd4-0xd8
    }
  }

  private readString(len: number): string {
    this.need(len)
    const b = this.buf
    const start = this.pos
    this.pos += len
    if (len < 24) {
      let s = ''
      for (let i = start; i < start + len; i++) {
        const c = b[i]
        if (c >= 0x80) return this.utf8(start, start + len)
        s += String.fromCharCode(c)
      }
      return s
    }
    return this.utf8(start, start + len)
  }

  private utf8(start: number, end: number): string {
    try {
      return utf8Fatal.decode(this.buf.subarray(start, end))
    } catch {
      throw new DecodeFailure('badUtf8')
    }
  }

  private readBin(len: number): Buffer {
    this.need(len)
    // A copy: a view would pin the whole receive batch for as long as the value lives.
    const out = Buffer.allocUnsafe(len)
    this.buf.copy(out, 0, this.pos, this.pos + len)
    this.pos += len
    return out
  }

  // The length is checked before the depth, in the Rust validator's order, so
  // both backends count a datagram that is both too deep and short the same way.
  private readArray(n: number, depth: number): unknown[] {
    this.need(n) // every element takes at least one byte
    if (depth >= MAX_DEPTH) throw new DecodeFailure('tooDeep')
    const out = new Array(n)
    for (let i = 0; i < n; i++) out[i] = this.read(depth + 1)
    return out
  }

  private readMap(n: number, depth: number): Record<string, unknown> | Map<unknown, unknown> {
    this.need(2 * n)
    if (depth >= MAX_DEPTH) throw new DecodeFailure('tooDeep')
    let obj: Record<string, unknown> | null = {}
    let map: Map<unknown, unknown> | null = null
    for (let i = 0; i < n; i++) {
      const k = this.read(depth + 1)
      const x = this.read(depth + 1)
      if (obj !== null && typeof k === 'string') {
        if (k === '__proto__') Object.defineProperty(obj, k, { value: x, enumerable: true, writable: true, configurable: true })
        else obj[k] = x
      } else {
        if (map === null) {
          map = new Map(Object.entries(obj!))
          obj = null
        }
        map.set(k, x)
      }
    }
    return obj ?? map!
  }
}

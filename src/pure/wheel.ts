/** A node the wheel links through its own fields, so removal is O(1) and allocation-free. */
export interface WheelNode {
  deadline: number
  wheelPrev: WheelNode | null
  wheelNext: WheelNode | null
  wheelSlot: number
}

/**
 * Hashed timing wheel for call deadlines: one interval timer for any number of
 * calls (never a timer per call), O(1) insert and remove through intrusive
 * lists, deadlines past the wheel's span wait out extra rounds in their slot.
 * Time is an argument (milliseconds, any monotonic clock).
 */
export class DeadlineWheel<N extends WheelNode> {
  private readonly slots: (N | null)[]
  private readonly mask: number
  private tick: number
  size = 0

  constructor(
    now: number,
    private readonly tickMs = 10,
    slotCount = 1024,
  ) {
    if (slotCount & (slotCount - 1)) throw new Error('slotCount must be a power of two')
    this.slots = new Array(slotCount).fill(null)
    this.mask = slotCount - 1
    this.tick = Math.floor(now / tickMs)
  }

  insert(node: N): void {
    // Never into the slot being swept or one already passed: at least the next tick.
    const t = Math.max(Math.ceil(node.deadline / this.tickMs), this.tick + 1)
    const slot = t & this.mask
    const head = this.slots[slot]
    node.wheelSlot = slot
    node.wheelPrev = null
    node.wheelNext = head
    if (head) head.wheelPrev = node
    this.slots[slot] = node
    this.size++
  }

  remove(node: N): void {
    if (node.wheelPrev) node.wheelPrev.wheelNext = node.wheelNext
    else this.slots[node.wheelSlot] = node.wheelNext as N | null
    if (node.wheelNext) node.wheelNext.wheelPrev = node.wheelPrev
    node.wheelPrev = node.wheelNext = null
    this.size--
  }

  /** Removes every node whose deadline is <= now and hands it to `expired`. */
  expire(now: number, expired: (node: N) => void): void {
    const target = Math.floor(now / this.tickMs)
    // After a stall longer than a round, one sweep of every slot is enough.
    const steps = Math.min(target - this.tick, this.slots.length)
    for (let i = 1; i <= steps; i++) {
      let node = this.slots[(this.tick + i) & this.mask]
      while (node) {
        const next = node.wheelNext as N | null
        if (node.deadline <= now) {
          this.remove(node)
          expired(node)
        }
        node = next
      }
    }
    if (target > this.tick) this.tick = target
  }

  /** Empties the wheel, handing every node to `each`. */
  clear(each: (node: N) => void): void {
    for (let s = 0; s < this.slots.length; s++) {
      let node = this.slots[s]
      while (node) {
        const next = node.wheelNext as N | null
        this.remove(node)
        each(node)
        node = next
      }
    }
  }
}

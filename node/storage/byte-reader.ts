/**
 * Reads exact byte counts from an async iterable of chunks of any size,
 * holding at most one source chunk plus the requested bytes in memory.
 * The cipher and the tar reader both frame a stream this way.
 */
export class ByteReader {
  private readonly iterator: AsyncIterator<Uint8Array>
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  private done = false

  constructor (source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]()
  }

  /** Pulls source chunks until `n` bytes are buffered or the source ends; returns the buffered count. */
  async fill (n: number): Promise<number> {
    while (this.pendingBytes < n && !this.done) {
      const next = await this.iterator.next()
      if (next.done === true) {
        this.done = true
        break
      }
      if (next.value.byteLength === 0) continue
      this.pending.push(next.value)
      this.pendingBytes += next.value.byteLength
    }
    return this.pendingBytes
  }

  /** Whether the source is exhausted and nothing is buffered. */
  async atEnd (): Promise<boolean> {
    return (await this.fill(1)) === 0
  }

  /**
   * Takes up to `n` bytes (fewer only at the end of the source). The result is
   * a fresh copy when it spans source chunks, a view otherwise.
   */
  async take (n: number): Promise<Uint8Array> {
    await this.fill(n)
    const size = Math.min(n, this.pendingBytes)
    if (size === 0) return new Uint8Array(0)
    const first = this.pending[0]
    if (first.byteLength >= size) {
      const out = first.subarray(0, size)
      if (first.byteLength === size) this.pending.shift()
      else this.pending[0] = first.subarray(size)
      this.pendingBytes -= size
      return out
    }
    const out = new Uint8Array(size)
    let at = 0
    while (at < size) {
      const head = this.pending[0]
      const want = size - at
      if (head.byteLength <= want) {
        out.set(head, at)
        at += head.byteLength
        this.pending.shift()
      } else {
        out.set(head.subarray(0, want), at)
        this.pending[0] = head.subarray(want)
        at += want
      }
    }
    this.pendingBytes -= size
    return out
  }

  /** Everything not read yet, as a stream (buffered bytes first). */
  async * remaining (): AsyncGenerator<Uint8Array> {
    while (this.pending.length > 0) {
      const head = this.pending.shift() as Uint8Array
      this.pendingBytes -= head.byteLength
      yield head
    }
    while (!this.done) {
      const next = await this.iterator.next()
      if (next.done === true) {
        this.done = true
        return
      }
      yield next.value
    }
  }

  /** Stops the source early (closes files or streams behind it). */
  async cancel (): Promise<void> {
    this.pending = []
    this.pendingBytes = 0
    if (!this.done) {
      this.done = true
      await this.iterator.return?.()
    }
  }
}

/**
 * One read shared by everyone who asks for the same thing at once, as fresh as if each had read
 * it alone: a caller joins a read that starts after it asked, never one already under way
 * (whose answer could predate what the caller has seen elsewhere, a push say). So per key at
 * most one read is in flight and one waits to start; everyone arriving meanwhile shares the
 * one that waits.
 *
 * For the scope's head and pruned point at each page of GET /v1/events: in a reconnect storm
 * thousands of pages of a few partners are asked at once, and each would otherwise be a
 * database round trip of its own.
 *
 * Imports nothing of ours.
 */
export class SharedReads<T> {
  /** Per key: the read in flight, and the one to start after it (that later callers join). */
  #reads = new Map<string, { running: Promise<T>; next: Promise<T> | undefined }>();

  read(key: string, run: () => Promise<T>): Promise<T> {
    const reads = this.#reads.get(key);
    if (!reads) return this.#start(key, run);
    if (!reads.next) {
      const settled = reads.running.then(
        () => undefined,
        () => undefined,
      );
      reads.next = settled.then(() => this.#start(key, run));
    }
    return reads.next;
  }

  #start(key: string, run: () => Promise<T>): Promise<T> {
    const running = run();
    this.#reads.set(key, { running, next: undefined });
    const done = () => {
      // A `next` that started replaced this entry; leave it.
      if (this.#reads.get(key)?.running === running) this.#reads.delete(key);
    };
    running.then(done, done);
    return running;
  }
}

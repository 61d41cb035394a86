/** Gives back a slot taken with `Slots.acquire`; a second call does nothing. */
export type Release = () => void;

/**
 * A counting semaphore with a bounded wait line: at most `concurrency` holders, at most `queue`
 * waiting (first come, first served). Used for the work a request may do at most a few times at once
 * (a search), so that no read load takes the process's memory, pool or loop from the write path.
 *
 *   free -> held --(release, someone waits)--> held by the next waiter
 *                --(release, nobody waits)---> free
 */
export class Slots {
  readonly concurrency: number;
  readonly queue: number;
  #held = 0;
  readonly #waiting: ((release: Release) => void)[] = [];

  /** Requires concurrency >= 1 and queue >= 0 (integers). */
  constructor(concurrency: number, queue: number) {
    if (!Number.isSafeInteger(concurrency) || concurrency < 1)
      throw new RangeError(`concurrency is ${concurrency}, want an integer >= 1`);
    if (!Number.isSafeInteger(queue) || queue < 0)
      throw new RangeError(`queue is ${queue}, want an integer >= 0`);
    this.concurrency = concurrency;
    this.queue = queue;
  }

  get held(): number {
    return this.#held;
  }
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * A slot now, or once an earlier holder releases one; undefined when every slot is held and the
   * wait line is full (the caller refuses the request).
   */
  acquire(): Promise<Release> | undefined {
    if (this.#held < this.concurrency) {
      this.#held++;
      return Promise.resolve(this.#releaser());
    }
    if (this.#waiting.length >= this.queue) return undefined;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter: the count of holders stays the same.
      if (next) next(this.#releaser());
      else this.#held--;
    };
  }
}

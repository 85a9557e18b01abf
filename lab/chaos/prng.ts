/**
 * A small seeded pseudo-random generator for chaos runs and fuzzing: the same seed gives the
 * same sequence, so a failure is reproduced by its seed. Not for anything secret.
 *
 * State: a 32-bit xorshift (shift triple 13, 17, 5), seeded through a multiply-and-fold
 * scramble so that small or zero seeds still start far from the all-zero state.
 */
export class Prng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = scramble(seed >>> 0) || 0x9e3779b9;
  }

  /** An independent stream for one purpose, so extra draws elsewhere never shift it. */
  fork(label: string | number): Prng {
    let h = this.seed >>> 0;
    for (const char of String(label)) h = scramble(h ^ char.charCodeAt(0));
    return new Prng(scramble(h ^ 0x5bd1e995));
  }

  /** A 32-bit unsigned integer. */
  nextUint32(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Picks by weight; weights need not sum to 1. */
  weighted<T>(entries: ReadonlyArray<readonly [T, number]>): T {
    const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
    let point = this.next() * total;
    for (const [value, weight] of entries) {
      point -= weight;
      if (point < 0) return value;
    }
    return entries[entries.length - 1]![0];
  }

  shuffle<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i -= 1) {
      const j = Math.floor(this.next() * (i + 1));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }
}

/** Mixes the bits of a 32-bit value: Knuth's multiplicative constant, then xor-folds. */
function scramble(value: number): number {
  let x = value >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x9e3779b1) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0x2c1b3c6d | 1) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** A seed for a run that was given none: printed, so the run can be repeated. */
export function freshSeed(): number {
  return (Date.now() ^ (process.pid << 16) ^ Math.floor(Math.random() * 0xffffffff)) >>> 0;
}

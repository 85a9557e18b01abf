import type { MoveEvent, TransitionCause } from '../store/records';


/** One change in whether this node has the VIP. */
export interface VipTransition {
  cause: TransitionCause;
  reason: string;
  term: number | null;
  vip: string;
  previousHolder: string | null;
}

/**
 * Turns what the agent does (VIP installed, VIP removed) and what the election says (won,
 * losing and why) into acquire/release/fault transitions, each reported once. Refreshes and
 * drift repairs at the same term are not transitions.
 */
export class VipLifecycle {
  private held: { term: number | null; vip: string } | null = null;
  private lastRemoved: { term: number | null; reason: string } | null = null;
  private pending: { cause: TransitionCause; reason: string } | null = null;
  private lastWin: MoveEvent | null = null;

  constructor(private readonly listener: (transition: VipTransition) => void) {}

  get holding(): boolean {
    return this.held !== null;
  }

  /** The term of the VIP on this node, or undefined when it has none. */
  get heldTerm(): number | null | undefined {
    return this.held?.term;
  }

  /** The election's record of this node winning: the next acquire reports who from and why. */
  won(event: MoveEvent): void {
    this.lastWin = event;
  }

  /** The election says the VIP must go, and why; the removal that follows carries that cause. */
  losing(cause: TransitionCause, reason: string): void {
    if (this.held) this.pending = { cause, reason };
  }

  installed(term: number | null, vip: string): void {
    this.pending = null;
    if (this.held && this.held.term === term) return;
    this.held = { term, vip };
    // Back at the same term (a DHCP lease returned): not a move, nobody else held it.
    if (this.lastRemoved && this.lastRemoved.term === term) {
      this.listener({ cause: 'acquired', reason: `the VIP is back (it was lost: ${this.lastRemoved.reason})`, term, vip, previousHolder: null });
      return;
    }
    const win = this.lastWin && this.lastWin.term === term ? this.lastWin : null;
    this.listener({ cause: 'acquired', reason: win?.reason ?? 'won the election', term, vip, previousHolder: win?.from ?? null });
  }

  /** The VIP left this node. With no cause given, the election's last word (losing) decides. */
  removed(cause: TransitionCause | null, reason: string): void {
    const held = this.held;
    if (!held) return;
    const pending = this.pending;
    this.held = null;
    this.pending = null;
    const effective = cause ?? pending?.cause ?? 'released';
    // The election's words win when they name the same cause: whichever of the converge loop and
    // the handoff removes the VIP first, the hooks see one reason.
    const text = pending && pending.cause === effective ? pending.reason : reason;
    this.lastRemoved = { term: held.term, reason: text };
    this.listener({ cause: effective, reason: text, term: held.term, vip: held.vip, previousHolder: null });
  }
}

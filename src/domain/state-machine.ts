// State machines as data: each stateful kind lists its legal transitions once; everyone else asks the table.
import { BerthError } from './errors.js';

/** A kind's states and, for each, the states it may move to. A state with no way out is final. */
export type TransitionTable<S extends string> = { readonly [From in S]: readonly S[] };

export interface StateMachine<S extends string> {
  /** What moves through the states, for messages: `instance`, `deployment`, ... */
  readonly kind: string;
  readonly states: readonly S[];
  readonly table: TransitionTable<S>;
  /** True when `from → to` is in the table. */
  can(from: S, to: S): boolean;
  /** States with no way out. */
  isFinal(state: S): boolean;
  /** Throws `IllegalTransition` unless `from → to` is in the table; `subject` names the thing moving. */
  assert(subject: string, from: S, to: S): void;
}

/** A jump the table does not allow: refused, and nothing is written. */
export class IllegalTransition extends BerthError {
  readonly kind: string;
  readonly from: string;
  readonly to: string;

  constructor(kind: string, subject: string, from: string, to: string, allowed: readonly string[]) {
    super(
      'conflict',
      `${kind} ${subject} cannot go from ${from} to ${to}` +
        (allowed.length === 0 ? ` (${from} is final)` : ` (from ${from}: ${allowed.join(', ')})`),
    );
    this.name = 'IllegalTransition';
    this.kind = kind;
    this.from = from;
    this.to = to;
  }
}

export function stateMachine<S extends string>(kind: string, table: TransitionTable<S>): StateMachine<S> {
  const states = Object.keys(table) as S[];
  for (const [from, targets] of Object.entries(table) as [S, readonly S[]][]) {
    for (const to of targets) {
      if (!(to in table)) throw new Error(`${kind} state machine: ${from} → ${to}: ${to} is not a state`);
    }
  }
  return {
    kind,
    states,
    table,
    can: (from, to) => table[from]?.includes(to) ?? false,
    isFinal: (state) => table[state].length === 0,
    assert(subject, from, to) {
      if (!table[from]?.includes(to)) throw new IllegalTransition(kind, subject, from, to, table[from] ?? []);
    },
  };
}

/** The table as `from → to` lines, for docs and test names. */
export function describeTransitions<S extends string>(machine: StateMachine<S>): string[] {
  return machine.states.flatMap((from) => machine.table[from].map((to) => `${from} → ${to}`));
}

/**
 * Probe-local breach trigger. The probe already knows every train it measures,
 * so it needs no server to decide that a link is in trouble: after
 * `breachTrains` consecutive trains towards a peer beyond the link's targets it
 * runs diagnostics, at most once per `minIntervalS` per peer. Both ends of a
 * link see the breach in their own trains, so both run diagnostics, whichever
 * server each happens to be connected to.
 */
import type { LinkTarget } from '../../../protocol/index.js';
import type { TrainResult } from '../types.js';

export interface BreachVerdict {
  breached: boolean;
  /** What was beyond the target, in words (empty when nothing was). */
  detail: string;
}

/** Judge one train (all its flows) against the link's targets. */
export function judgeTrain(results: readonly TrainResult[], target: LinkTarget): BreachVerdict {
  const sent = results.reduce((n, r) => n + r.sent, 0);
  const received = results.reduce((n, r) => n + r.received, 0);
  const p99s = results.map((r) => r.rttP99Us).filter((v): v is number => v !== null);
  const worstP99Ms = p99s.length > 0 ? Math.max(...p99s) / 1000 : null;
  const loss = sent > 0 ? (sent - received) / sent : 0;
  const problems: string[] = [];
  if (worstP99Ms !== null && worstP99Ms > target.rttP99Ms) problems.push(`p99 RTT ${worstP99Ms.toFixed(3)} ms > ${target.rttP99Ms} ms`);
  if (loss > target.lossRatioMax) problems.push(`loss ${(loss * 100).toFixed(2)} % > ${(target.lossRatioMax * 100).toFixed(2)} %`);
  return { breached: problems.length > 0, detail: problems.join(', ') };
}

export interface BreachPolicy {
  breachTrains: number;
  minIntervalS: number;
}

interface PeerState {
  consecutive: number;
  lastRunMs: number | null;
}

export class BreachWatcher {
  private readonly peers = new Map<string, PeerState>();

  constructor(private policy: BreachPolicy) {}

  setPolicy(policy: BreachPolicy): void {
    this.policy = policy;
  }

  /**
   * Count one train towards `dst`. Returns the reason to run diagnostics now, or
   * null: not enough consecutive breaches yet, or a run towards this peer
   * happened less than `minIntervalS` ago.
   */
  observe(dst: string, verdict: BreachVerdict, nowMs: number): string | null {
    const state = this.peers.get(dst) ?? { consecutive: 0, lastRunMs: null };
    this.peers.set(dst, state);
    if (!verdict.breached) {
      state.consecutive = 0;
      return null;
    }
    state.consecutive++;
    if (state.consecutive < this.policy.breachTrains) return null;
    if (state.lastRunMs !== null && nowMs - state.lastRunMs < this.policy.minIntervalS * 1000) return null;
    state.lastRunMs = nowMs;
    const count = state.consecutive;
    state.consecutive = 0;
    return `${count} consecutive trains beyond the link's targets (last: ${verdict.detail})`;
  }
}

// Folds the per-flow 'train' messages that share one train start `t` into a
// single point: max of p99/max, min of min, mean of p50 and jitter, summed
// sent/received for loss.
import type { LiveMessage } from '../../api/contract.js';

export type TrainMessage = Extract<LiveMessage, { type: 'train' }>;

export interface TrainPoint {
  t: number;
  minMs: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  jitterMs: number | null;
  /** 0..1, null when nothing was sent. */
  lossRatio: number | null;
  sent: number;
  received: number;
}

export class TrainAggregate {
  private min = Infinity;
  private max = -Infinity;
  private p99 = -Infinity;
  private p50Sum = 0;
  private p50N = 0;
  private jitterSum = 0;
  private jitterN = 0;
  private sent = 0;
  private received = 0;

  constructor(readonly t: number) {}

  add(m: TrainMessage): void {
    if (m.rttMinMs !== null) this.min = Math.min(this.min, m.rttMinMs);
    if (m.rttMaxMs !== null) this.max = Math.max(this.max, m.rttMaxMs);
    if (m.rttP99Ms !== null) this.p99 = Math.max(this.p99, m.rttP99Ms);
    if (m.rttP50Ms !== null) {
      this.p50Sum += m.rttP50Ms;
      this.p50N++;
    }
    if (m.jitterMs !== null) {
      this.jitterSum += m.jitterMs;
      this.jitterN++;
    }
    this.sent += m.sent;
    this.received += m.received;
  }

  point(): TrainPoint {
    const fin = (v: number): number | null => (Number.isFinite(v) ? v : null);
    return {
      t: this.t,
      minMs: fin(this.min),
      p50Ms: this.p50N ? this.p50Sum / this.p50N : null,
      p99Ms: fin(this.p99),
      maxMs: fin(this.max),
      jitterMs: this.jitterN ? this.jitterSum / this.jitterN : null,
      lossRatio: this.sent > 0 ? Math.max(0, 1 - this.received / this.sent) : null,
      sent: this.sent,
      received: this.received,
    };
  }
}

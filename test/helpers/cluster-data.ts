/**
 * Data for the cluster tests, the same on every store it is written to: a
 * month of stories per link (a latency breach, a loss breach, a link down,
 * a one-way direction, an under-provisioned port, slow throughput tests) and
 * probe batches as the collector receives them.
 */
import type { TrainSample } from '../../protocol/index.js';
import type { Topology } from '../../topology/index.js';
import type { NicRow, ThroughputRow, TrainRow } from '../../sql/index.js';
import { nic, throughput, train } from './sla-month.js';

/** The links the month's stories are told on. */
export const MONTH_LINKS = [['alfa', 'bravo'], ['alfa', 'charlie'], ['alfa', 'delta'], ['bravo', 'charlie'], ['bravo', 'delta'], ['charlie', 'echo']] as const;

/** A train whose packets spread over 10 µs steps above `rttUs` (so percentiles differ from min and max). */
export function spreadTrain(src: string, dst: string, tsUs: number, rttUs: number, sent = 10, lost = 0): TrainRow {
  const row = train(src, dst, tsUs, rttUs, sent, lost);
  const rtts = Array.from({ length: sent - lost }, (_, i) => rttUs + ((i * 37) % 10) * 10);
  return { ...row, rtts_us: rtts, rtt_max_us: rtts.length ? Math.max(...rtts) : null };
}

/**
 * `minutes` minutes from `startS`, one story per link: alfa~charlie breaches
 * latency in minutes 30-59, alfa~delta loses 3 of 10 packets in 60-79,
 * bravo~charlie is down in 90-99, bravo->delta is silent for the first hour
 * (one-way only: uncovered), charlie's ports run at 90G in 10-19, and its
 * throughput tests reach 80 Gb/s.
 */
export function monthData(startS: number, minutes: number): { trains: TrainRow[]; nics: NicRow[]; tests: ThroughputRow[] } {
  const minuteUs = (minute: number) => (startS + minute * 60) * 1e6;
  const trains: TrainRow[] = [];
  const nics: NicRow[] = [];
  const tests: ThroughputRow[] = [];
  for (let m = 0; m < minutes; m++) {
    const at = minuteUs(m) + 5e6;
    for (const [a, b] of MONTH_LINKS) {
      let rtt = 700 + (m % 7) * 30;
      let lost = 0;
      if (a === 'alfa' && b === 'charlie' && m >= 30 && m < 60) rtt = 3000; // latency breach
      if (a === 'alfa' && b === 'delta' && m >= 60 && m < 80) lost = 3; // loss breach
      if (a === 'bravo' && b === 'charlie' && m >= 90 && m < 100) lost = 10; // link down
      trains.push(spreadTrain(a, b, at, rtt, 10, lost));
      if (!(a === 'bravo' && b === 'delta' && m < 60)) trains.push(spreadTrain(b, a, at + 1e6, rtt + 15, 10, lost)); // one-way only: uncovered
      const speed = a === 'charlie' && m >= 10 && m < 20 ? 90_000 : 100_000; // under-provisioned
      nics.push(nic(a, b, at, speed), nic(b, a, at, 100_000));
      if (m % 30 === 0) {
        const gbps = a === 'charlie' ? 80 : 97 + (m / 30);
        tests.push(throughput(a, b, at + 2e6, gbps, gbps - 1));
      }
    }
  }
  tests.push(throughput('alfa', 'bravo', minuteUs(45) + 3e6, null, null, 'iperf3: connection refused'));
  return { trains, nics, tests };
}

/**
 * A probe batch for the collector: trains to each peer over the `minutes`
 * minutes before `nowMinuteS` (one lossy train, odd minutes synced on alfa),
 * NIC samples, and a throughput test to the first peer. Both ends of a link
 * report a test at the same instant, as two probes may.
 */
export function probeBatch(topology: Topology, centre: string, batchId: string, nowMinuteS: number, minutes = 8): string {
  const peers = topology.peersOf(centre);
  const samples: TrainSample[] = [];
  for (let k = 1; k <= minutes; k++) {
    for (const [i, dst] of peers.entries()) {
      const startedAtUs = (nowMinuteS - k * 60 + 10 + i) * 1e6;
      const received = k === 3 && i === 0 ? 7 : 10;
      const rttsUs = Array.from({ length: received }, (_, p) => 500 + i * 100 + k * 7 + p * 11);
      const sorted = [...rttsUs].sort((x, y) => x - y);
      const synced = centre === 'alfa' && k % 2 === 1;
      samples.push({
        trainId: `${batchId}-${dst}-${k}`, dst, engine: 'stamp', startedAtUs, flow: 0, srcPort: 40000, dscp: 46,
        sent: 10, received, lost: 10 - received, duplicated: 0, reordered: 0,
        rttMinUs: sorted[0]!, rttMedianUs: sorted[Math.floor(sorted.length / 2)]!, rttP99Us: sorted.at(-1)!, rttMaxUs: sorted.at(-1)!,
        jitterUs: 12, rttsUs, synced, errorEstimateUs: synced ? 40 + k : 5000,
        fwdUs: synced ? rttsUs.map((r) => r / 2) : [], revUs: synced ? rttsUs.map((r) => r / 2) : [],
      });
    }
  }
  const nicSamples = peers.map((peer, i) => ({
    sampleId: `nic-live-${centre}-${peer}`, interface: `eth${i}`, peer, atUs: (nowMinuteS - 90 + i) * 1e6, intervalS: 60,
    speedMbps: 100_000, operState: 'up', reset: false, rxBps: 2e9 + i, txBps: 3e9 + i, rxPps: 1e5, txPps: 1e5,
    rxErrorsPs: 0, txErrorsPs: 0, rxDropsPs: 0, txDropsPs: 0, utilisation: 0.03 + i / 100,
  }));
  const tests = peers.slice(0, 1).map((dst) => ({
    testId: `tp-live-${centre}-${dst}`, dst, trigger: 'schedule' as const, startedAtUs: (nowMinuteS - 300) * 1e6, engine: 'iperf3' as const,
    engineVersion: '3.16', ok: true, error: null, direction: 'bidir' as const, streams: 8, seconds: 10,
    forwardBps: 96e9, reverseBps: 94e9 + centre.length, retransmits: 3, cpuLocalPct: 20, cpuRemotePct: 22,
  }));
  return JSON.stringify({ type: 'batch', batchId, samples, nic: nicSamples, throughput: tests });
}

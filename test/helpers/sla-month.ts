/**
 * Hand-made SLA months for tests: a topology whose links each tell one story,
 * and rows built minute by minute and inserted with the sql/ insert functions
 * (the collector's 399-day window does not apply to direct inserts).
 */
import { hashToken, parseTopology, type Topology } from '../../topology/index.js';
import { formatDateTime64, insertNic, insertThroughput, insertTrains, type NicRow, type ThroughputRow, type TrainRow } from '../../sql/index.js';
import type { ClickHouseClient } from '@clickhouse/client';

const SHANGHAI_OFFSET_MS = 8 * 3600_000;

export interface TestMonth {
  /** YYYY-MM */
  month: string;
  next: string;
  /** Unix seconds of local 00:00 on the 1st (Asia/Shanghai = UTC+8, no DST). */
  startS: number;
  endS: number;
  minutes: number;
}

/** The most recent month of 30 days (Asia/Shanghai) that has ended: its minutes are 43,200. */
export function recentThirtyDayMonth(nowMs = Date.now()): TestMonth {
  const local = new Date(nowMs + SHANGHAI_OFFSET_MS);
  let y = local.getUTCFullYear();
  let m = local.getUTCMonth(); // 0-based: the current month; step back from the previous one
  for (;;) {
    m -= 1;
    if (m < 0) {
      m = 11;
      y -= 1;
    }
    const days = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
    if (days === 30) break;
  }
  const startS = (Date.UTC(y, m, 1) - SHANGHAI_OFFSET_MS) / 1000;
  const endS = (Date.UTC(y, m + 1, 1) - SHANGHAI_OFFSET_MS) / 1000;
  const fmt = (yy: number, mm: number) => `${yy}-${String(mm + 1).padStart(2, '0')}`;
  return { month: fmt(y, m), next: m === 11 ? fmt(y + 1, 0) : fmt(y, m + 1), startS, endS, minutes: (endS - startS) / 60 };
}

export interface SlaTestTopology {
  topology: Topology;
  operatorToken: string;
  regulatorToken: string;
  probeToken: string;
}

/** Centres alfa..echo; six links, each with one story (see sla.test.ts). */
export function slaTopology(extraSla = ''): SlaTestTopology {
  const operatorToken = `op-${Math.random().toString(36).slice(2)}`;
  const regulatorToken = `reg-${Math.random().toString(36).slice(2)}`;
  const probeToken = `probe-${Math.random().toString(36).slice(2)}`;
  const centres = ['alfa', 'bravo', 'charlie', 'delta', 'echo'].map((id, i) => `  - id: ${id}
    name: Centre ${id}
    district: District ${i}
    probe:
      host: 127.0.40.${i + 2}
      token_sha256: ${hashToken(`${probeToken}-${id}`)}`);
  const yaml = `name: SLA test network
sla:
  rtt_p99_target_ms: 2
  loss_ratio_max: 0.001
  coverage_min: 0.99
  throughput_floor_gbps: 95
  auto_finalise: false
${extraSla}
centres:
${centres.join('\n')}
links:
  - { between: [alfa, bravo], capacity_gbps: 100 }
  - { between: [alfa, charlie], capacity_gbps: 100 }
  - { between: [alfa, delta], capacity_gbps: 100 }
  - { between: [bravo, charlie], capacity_gbps: 100 }
  - { between: [bravo, delta], capacity_gbps: 100 }
  - { between: [charlie, echo], capacity_gbps: 100, name: 'Charlie, "the" – Echo 回声' }
access:
  operators: [{ name: noc, token_sha256: ${hashToken(operatorToken)} }]
  regulators: [{ name: city-regulator, token_sha256: ${hashToken(regulatorToken)} }]
`;
  return { topology: parseTopology(yaml, 'sla-test.yaml'), operatorToken, regulatorToken, probeToken };
}

let seq = 0;

/** One train of `sent` packets, `lost` of them lost, every delivered packet at `rttUs`. */
export function train(src: string, dst: string, tsUs: number, rttUs: number, sent = 10, lost = 0): TrainRow {
  const received = sent - lost;
  const has = received > 0;
  return {
    ts: formatDateTime64(tsUs), src, dst, engine: 'stamp', flow: 0, src_port: 40000, dscp: 46, batch_id: 'sla-test',
    train_id: `sla-${src}-${dst}-${tsUs}-${++seq}`, sent, received, lost, duplicated: 0, reordered: 0,
    rtt_min_us: has ? rttUs : null, rtt_median_us: has ? rttUs : null, rtt_p99_us: has ? rttUs : null, rtt_max_us: has ? rttUs : null,
    jitter_us: has ? 0 : null, synced: false, error_estimate_us: 1000, rtts_us: Array(received).fill(rttUs), fwd_us: [], rev_us: [],
  };
}

export function nic(centre: string, peer: string, tsUs: number, speedMbps: number): NicRow {
  return {
    ts: formatDateTime64(tsUs).slice(0, 23), centre, interface: `to-${peer}`, peer, interval_s: 60, speed_mbps: speedMbps, oper_state: 'up',
    reset: false, rx_bps: 1e9, tx_bps: 1e9, rx_pps: 1e5, tx_pps: 1e5, rx_errors_ps: 0, tx_errors_ps: 0, rx_drops_ps: 0, tx_drops_ps: 0,
    utilisation: 0.01, sample_id: `nic-${centre}-${peer}-${tsUs}`, batch_id: 'sla-test',
  };
}

export function throughput(src: string, dst: string, tsUs: number, forwardGbps: number | null, reverseGbps: number | null, error = ''): ThroughputRow {
  return {
    ts: formatDateTime64(tsUs).slice(0, 23), src, dst, test_id: `tp-${src}-${dst}-${tsUs}`, trigger: 'schedule', engine: 'iperf3', engine_version: '3.16',
    direction: 'bidir', streams: 8, seconds: 10, ok: error === '', error,
    forward_bps: forwardGbps === null ? null : forwardGbps * 1e9, reverse_bps: reverseGbps === null ? null : reverseGbps * 1e9,
    retransmits: 0, cpu_local_pct: 10, cpu_remote_pct: 10, batch_id: 'sla-test',
  };
}

/** Insert in batches of 50,000 rows (one INSERT each, distinct dedup tokens). */
export async function insertAll(client: ClickHouseClient, trains: TrainRow[], nics: NicRow[], tests: ThroughputRow[], tag: string): Promise<void> {
  const chunk = 50_000;
  for (let i = 0; i < trains.length; i += chunk) await insertTrains(client, trains.slice(i, i + chunk), `${tag}-trains-${i}`);
  for (let i = 0; i < nics.length; i += chunk) await insertNic(client, nics.slice(i, i + chunk), `${tag}-nic-${i}`);
  await insertThroughput(client, tests, `${tag}-tests`);
}

/** A validated batch's records as the store's rows (one function per table). */
import { formatDateTime64, type LoadWindowRow, type NicRow, type ThroughputRow, type TrainArraysJson, type TrainRow, type TrainRowToInsert } from '../sql/index.js';
import type { NicSampleRecord, ThroughputSampleRecord, Timestamping, TrainSample } from '../protocol/index.js';

/**
 * `reflectorTs`: the reflector's timestamping when the collector knows it
 * better than the sample says (taken instead of the sample's). `arraysJson`:
 * the sample's delay arrays already written as JSON (the insert reuses them).
 */
export function toRow(src: string, batchId: string, s: TrainSample, reflectorTs?: Timestamping, arraysJson?: TrainArraysJson): TrainRowToInsert {
  const row: TrainRow & { arraysJson?: TrainArraysJson } = {
    ts: formatDateTime64(s.startedAtUs),
    src,
    dst: s.dst,
    engine: s.engine,
    flow: s.flow,
    src_port: s.srcPort,
    dscp: s.dscp,
    batch_id: batchId,
    train_id: s.trainId,
    sent: s.sent,
    received: s.received,
    lost: s.lost,
    duplicated: s.duplicated,
    reordered: s.reordered,
    rtt_min_us: s.rttMinUs,
    rtt_median_us: s.rttMedianUs,
    rtt_p99_us: s.rttP99Us,
    rtt_max_us: s.rttMaxUs,
    jitter_us: s.jitterUs,
    synced: s.synced,
    error_estimate_us: s.errorEstimateUs,
    rtts_us: s.rttsUs,
    fwd_us: s.fwdUs,
    rev_us: s.revUs,
    sender_ts: s.senderTimestamping ?? 'unknown',
    reflector_ts: reflectorTs ?? s.reflectorTimestamping ?? 'unknown',
  };
  if (arraysJson) row.arraysJson = arraysJson;
  return row;
}

export function toNicRow(centre: string, batchId: string, n: NicSampleRecord): NicRow {
  return {
    ts: formatDateTime64(n.atUs).slice(0, 23),
    centre,
    interface: n.interface,
    peer: n.peer ?? '',
    interval_s: n.intervalS,
    speed_mbps: n.speedMbps,
    oper_state: n.operState ?? '',
    reset: n.reset,
    rx_bps: n.rxBps,
    tx_bps: n.txBps,
    rx_pps: n.rxPps,
    tx_pps: n.txPps,
    rx_errors_ps: n.rxErrorsPs,
    tx_errors_ps: n.txErrorsPs,
    rx_drops_ps: n.rxDropsPs,
    tx_drops_ps: n.txDropsPs,
    utilisation: n.utilisation,
    sample_id: n.sampleId,
    batch_id: batchId,
  };
}

/** The span a probe's test loaded its link, on the probe's clock (none from a probe too old to report its end). */
export function toLoadRow(centre: string, t: ThroughputSampleRecord): LoadWindowRow[] {
  if (t.endedAtUs === undefined) return [];
  const [a, b] = centre < t.dst ? [centre, t.dst] : [t.dst, centre];
  return [{
    windowId: t.testId, a, b, startMs: t.startedAtUs / 1000, endMs: t.endedAtUs / 1000, source: 'measured', trigger: t.trigger,
    recordedBy: `probe:${centre}`,
  }];
}

export function toThroughputRow(centre: string, batchId: string, t: ThroughputSampleRecord): ThroughputRow {
  return {
    ts: formatDateTime64(t.startedAtUs).slice(0, 23),
    src: centre,
    dst: t.dst,
    test_id: t.testId,
    trigger: t.trigger,
    engine: t.engine,
    engine_version: t.engineVersion ?? '',
    direction: t.direction,
    streams: t.streams,
    seconds: t.seconds,
    ok: t.ok,
    error: t.error ?? '',
    forward_bps: t.forwardBps,
    reverse_bps: t.reverseBps,
    retransmits: t.retransmits,
    cpu_local_pct: t.cpuLocalPct,
    cpu_remote_pct: t.cpuRemotePct,
    batch_id: batchId,
  };
}

/**
 * Ingest metrics in Prometheus form. The registry is the server's; the
 * collector only registers and updates its own series.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface CollectorMetrics {
  trains: Counter<'centre'>;
  batches: Counter<'centre'>;
  rejected: Counter<'reason'>;
  storeErrors: Counter;
  batchConflicts: Counter<'centre'>;
  ackLag: Histogram;
  storeGroupBatches: Histogram;
  probeConnections: Gauge<'centre'>;
  spoolBatches: Gauge<'centre'>;
  spoolBytes: Gauge<'centre'>;
  spoolDroppedTrains: Gauge<'centre'>;
  probeDatapathNative: Gauge<'centre'>;
  probeEngineUnavailable: Gauge<'centre' | 'engine'>;
  reflectorDatagrams: Gauge<'centre' | 'outcome'>;
}

export function createCollectorMetrics(registry: Registry): CollectorMetrics {
  const registers = [registry];
  return {
    trains: new Counter({ name: 'citymesh_ingested_trains_total', help: 'Trains stored, by probing centre', labelNames: ['centre'], registers }),
    batches: new Counter({ name: 'citymesh_ingested_batches_total', help: 'Batches stored (first delivery), by centre', labelNames: ['centre'], registers }),
    rejected: new Counter({ name: 'citymesh_rejected_messages_total', help: 'Probe messages refused, by reason', labelNames: ['reason'], registers }),
    storeErrors: new Counter({ name: 'citymesh_store_errors_total', help: 'ClickHouse inserts that failed', registers }),
    batchConflicts: new Counter({
      name: 'citymesh_batch_conflicts_total', help: 'Batches refused because their id was stored before with other content, by centre', labelNames: ['centre'], registers,
    }),
    ackLag: new Histogram({
      name: 'citymesh_ack_lag_seconds',
      help: 'From a probe sealing a batch to its acknowledgement',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers,
    }),
    storeGroupBatches: new Histogram({
      name: 'citymesh_store_group_batches',
      help: 'Batches stored together by one INSERT per table (group commit)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers,
    }),
    probeConnections: new Gauge({ name: 'citymesh_probe_connections', help: 'Authenticated probe connections', labelNames: ['centre'], registers }),
    spoolBatches: new Gauge({ name: 'citymesh_probe_spool_batches', help: 'Batches waiting in the probe spool (as last reported)', labelNames: ['centre'], registers }),
    spoolBytes: new Gauge({ name: 'citymesh_probe_spool_bytes', help: 'Bytes in the probe spool (as last reported)', labelNames: ['centre'], registers }),
    spoolDroppedTrains: new Gauge({
      name: 'citymesh_probe_spool_dropped_trains',
      help: 'Trains the probe dropped because its spool was full (a counted gap; as last reported)',
      labelNames: ['centre'],
      registers,
    }),
    probeDatapathNative: new Gauge({
      name: 'citymesh_probe_stamp_datapath_native',
      help: '1: the probe runs STAMP on the native datapath (kernel timestamps); 0: on the JavaScript fallback (user-space timestamps)',
      labelNames: ['centre'],
      registers,
    }),
    probeEngineUnavailable: new Gauge({
      name: 'citymesh_probe_engine_unavailable',
      help: '1 while the probe cannot run this engine (e.g. no ping program); see /v1/status for why',
      labelNames: ['centre', 'engine'],
      registers,
    }),
    reflectorDatagrams: new Gauge({
      name: 'citymesh_reflector_datagrams',
      help: 'Datagrams the probe\'s STAMP reflector received, reflected, or dropped by reason (dropped_<reason>), since it started (as last reported)',
      labelNames: ['centre', 'outcome'],
      registers,
    }),
  };
}

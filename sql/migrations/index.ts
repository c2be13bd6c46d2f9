/**
 * Numbered, append-only schema migrations. Never edit a migration that has
 * shipped: add the next number. Each migration is a list of statements because
 * ClickHouse runs one statement per request. Statements use IF NOT EXISTS so a
 * migration interrupted half-way can simply run again.
 */
import { latencyTrains } from './0001_latency_trains.js';
import { latencyRollup1m } from './0002_latency_rollup_1m.js';
import { trainIds } from './0003_train_ids.js';
import { capacity } from './0004_capacity.js';
import { sla } from './0005_sla.js';
import { coordination } from './0006_coordination.js';
import { alerts } from './0007_alerts.js';
import { diagnostics } from './0008_diagnostics.js';
import { loadWindows } from './0009_load_windows.js';
import { batchLedger } from './0010_batch_ledger.js';
import { latencyTotals } from './0012_latency_totals.js';
import { timestamping } from './0013_timestamping.js';
import { selfLoadTotals } from './0014_self_load_totals.js';
import { pathLatest } from './0015_path_latest.js';
import { slaMinutesHourlyRollup } from './0016_sla_minutes_hourly_rollup.js';
import { pathRecent } from './0017_path_recent.js';
import { slaLinkHours } from './0018_sla_link_hours.js';
import { latency1mRecent } from './0019_latency_1m_recent.js';

export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

export const migrations: readonly Migration[] = [latencyTrains, latencyRollup1m, trainIds, capacity, sla, coordination, alerts, diagnostics, loadWindows, batchLedger, latencyTotals, timestamping, selfLoadTotals, pathLatest, slaMinutesHourlyRollup, pathRecent, slaLinkHours, latency1mRecent];

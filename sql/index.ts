/** What other folders may use from sql/: the store, migrations and named queries. */
export { openStore, StoreLockedError, type Store, type StoreOptions } from './store.js';
export { migrate, appliedVersions, latestVersion, type MigrationReport } from './migrate.js';
export {
  insertTrains, TRAIN_COLUMNS, trainRowsCompactBytes, trainArraysJson, type TrainArraysJson, type TrainRowToInsert, duplicateTrainIds, countTrains, lookUpBatches, type BatchLookup, type BatchLookupRequest, insertBatchLedger, type BatchLedgerRow, type BatchRecordIds, latestPathStatus, linkSeries, seriesPlan, trainsBetween,
  type TrainRow, type PathStatusRow, type SeriesQuery, type SeriesColumns, type TrainsQuery,
} from './latency.js';
export { formatDateTime64, parseDateTime64 } from './time.js';
export { pathTotals, pathWindows, RTT_BUCKET_BOUNDS_S, RTT_BUCKET_BOUNDS_US, type PathCounts, type PathWindow } from './network-metrics.js';
export { insertProbeReport, latestProbeReports, type ProbeReportRow } from './probe-reports.js';
export {
  insertThroughput, insertNic, throughputHistory, throughputTestById, latestThroughputTests, latestNicStates, utilisationSeries,
  type ThroughputRow, type NicRow, type ThroughputTest, type LinkNicState, type UtilisationColumns,
} from './capacity.js';
export {
  slaMonthBounds, slaMonthsWithData, slaMonthOf, slaCompliance, slaReadPlan, slaLinkTimeline, slaLinkMinutes,
  insertMaintenance, maintenanceWindows, insertSlaReport, slaReportIndex, slaReportDocuments, samplesStoredSince,
  type SlaSource, type SlaVerdictCode, type SlaLinkInput, type SlaQuery, type SlaScopeRow, type SlaTimeline, type SlaMinuteColumns, type SlaReadPlan,
  type MaintenanceRow, type MaintenanceWindow, type SlaReportRow, type SlaReportSummary,
} from './sla.js';
export { ROLLUP_LEVELS } from './direction-buckets.js';
export {
  materialiseSlaMinutes, materialiseSlaHours, slaHoursToMaterialise, summariseSlaLinkHours, type SlaHour, type MaterialiseOptions,
} from './sla-minutes.js';
export { placementEvidence, type PlacementEvidence } from './placement.js';
export {
  alertLinkRuns, alertThroughputRuns, alertClockRuns, alertCentresLastSeen, insertAlertEvent, latestAlertEpisodes, alertEventsBetween,
  insertSilence, silences, insertNotification, notificationStates,
  type AlertLinkInput, type AlertRun, type LinkRun, type CentreRun, type LinkRunKind, type LinkRunsQuery, type AlertStatus,
  type AlertEventRow, type SilenceMatcher, type SilenceRow, type NotificationOutcome, type NotificationRow, type NotificationState,
} from './alerts.js';
export { claimJobSlot, jobSlotHolder, liveTrainsSince, type LiveTrainRow } from './coordination.js';
export {
  insertDiagnostics, insertDiagnosticRequest, diagnosticRequestsSince, diagnosticRequest, diagnosticRuns, diagnosticRunsById, pathChanges,
  type DiagnosticsRow, type DiagnosticRequest, type DiagnosticRun, type DiagnosticHop, type PathChange,
} from './diagnostics.js';
export {
  renderClusterMigrations, renderClusterSchema, clusterInsertSettings, migrationScript, migrateCluster, migrateClusterNodes, checkClusterSchema,
  CONTROL_TABLES, DEDUP_WINDOW_SECONDS, UNREPLICATED, type ClusterOptions, type ClusterReplication, type ClusterNodeClient, type ClusterSchema, type ClusterTable,
} from './cluster.js';
export {
  startEngineNode, startEngineCluster, engineNodeUnavailable, isLoopbackHost, freePort,
  type EngineNode, type EngineNodeOptions, type EngineCluster, type EngineClusterOptions,
} from './engine-node.js';
export { migrations as schemaMigrations, type Migration } from './migrations/index.js';
export {
  guardedLoadSpans, insertLoadWindows, loadWindowsBetween,
  type GuardedSpan, type LoadWindowRow, type LoadWindowSource, type LoadWindow,
} from './load-windows.js';

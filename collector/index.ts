/** What other folders may use from collector/: ingest, live hub, topology, wire protocol. */
export { Collector, defaultCollectorLimits, toRow, batchContentSha256, type CollectorOptions, type CollectorLimits, type IngestOutcome } from './collector.js';
export { authenticate, hashToken, tokenMatches, type Principal, type Role } from './auth.js';
export { createCollectorMetrics, type CollectorMetrics } from './metrics.js';
export { TokenBucket, KeyedLimiter } from './token-bucket.js';
export { LiveHub, type LiveTrain, type LiveListener, type RetractListener } from './live-hub.js';
export { LiveTail, type LiveTailOptions } from './live-tail.js';
export { planFor } from './plan.js';
export * from './protocol.js';
export {
  loadTopology, parseTopology, linkId, ConfigError,
  type Topology, type Centre, type Link, type Person, type SlaPolicy, type ProbingPolicy, type ConfigProblem, type LoadOptions,
} from './topology/index.js';
export { parseDurationMs, formatDuration, type AlertsPolicy, type AlertRulePolicy, type AlertWebhook, type AlertmanagerTarget, type AlertSeverity } from './topology/alerts.js';
export {
  ThroughputCoordinator, plannedLoadMs, selfLoadGuardMs, type TestStatus, type TestState, type LoadRecord, type LoadRecorder,
} from './throughput-coordinator.js';
export { FailedAuthLimiter, defaultFailedAuthLimits, type FailedAuthLimits, type AuthRefusal, type AuthLimitScope, type Budget } from './auth-limits.js';
export { isStorableText, textProblem, unstorableText, clipText } from './text.js';
export { checkTrainSample } from './train-check.js';

/** What other folders may use from collector/: ingest, live hub, probe plans, throughput coordination. */
export { Collector, defaultCollectorLimits, type CollectorOptions, type CollectorLimits, type IngestOutcome } from './collector.js';
export { toRow } from './rows.js';
export { batchContentSha256 } from './batch-content.js';
export { createCollectorMetrics, type CollectorMetrics } from './metrics.js';
export { TokenBucket, KeyedLimiter } from './token-bucket.js';
export { LiveHub, type LiveHubOptions, type LiveTrain, type LiveListener, type RetractListener } from './live-hub.js';
export { LiveTail, type LiveTailOptions } from './live-tail.js';
export { planFor } from './plan.js';
export {
  ThroughputCoordinator, plannedLoadMs, selfLoadGuardMs, type TestStatus, type TestState, type LoadRecord, type LoadRecorder,
} from './throughput-coordinator.js';
export { FailedAuthLimiter, defaultFailedAuthLimits, type FailedAuthLimits, type AuthRefusal, type AuthLimitScope, type Budget } from './auth-limits.js';

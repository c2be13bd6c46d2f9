/** What other folders may use from collector/: ingest, live hub, topology, wire protocol. */
export { Collector, type CollectorOptions, type CollectorStats } from './collector.js';
export { LiveHub, type LiveTrain, type LiveListener } from './live-hub.js';
export { planFor } from './plan.js';
export * from './protocol.js';
export {
  loadTopology, parseTopology, hashToken, linkId, ConfigError,
  type Topology, type Centre, type Link, type SlaPolicy, type ProbingPolicy, type ConfigProblem, type LoadOptions,
} from './topology/index.js';

/**
 * The city as configured: centres, links, SLA and probing policy, alert
 * routing, and the people and probes a bearer token can be. Imports only the
 * wire protocol's text rules; the probe and the server both read it.
 */
export {
  loadTopology, parseTopology, linkId, ConfigError,
  type Topology, type Centre, type Link, type LinkSlaPolicy, type Person, type SlaPolicy, type ProbingPolicy, type ConfigProblem, type LoadOptions,
} from './model.js';
export {
  parseDurationMs, formatDuration,
  type AlertsPolicy, type AlertRulePolicy, type AlertWebhook, type AlertmanagerTarget, type AlertSeverity,
} from './alerts.js';
export { authenticate, findCentreByToken, hashToken, tokenMatches, type Principal, type Role } from './principals.js';

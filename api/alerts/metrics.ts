/**
 * Alerting metrics in Prometheus form, registered in the server's registry
 * (or a private one when none is given, so several services can coexist in
 * one test process).
 */
import { Counter, Gauge, Registry } from 'prom-client';

export interface AlertMetrics {
  evaluations: Counter<'outcome'>;
  alerts: Gauge<'state'>;
  notifications: Counter<'receiver' | 'status' | 'outcome'>;
  notificationFailures: Counter<'receiver' | 'reason'>;
  deliveryAttempts: Counter<'receiver'>;
  alertmanagerPosts: Counter<'alertmanager' | 'outcome'>;
  alertmanagerAlerts: Counter<'alertmanager'>;
}

export function createAlertMetrics(registry: Registry = new Registry()): AlertMetrics {
  const registers = [registry];
  return {
    evaluations: new Counter({
      name: 'citymesh_alert_evaluations_total',
      help: 'Alert evaluation ticks, by outcome (evaluated, skipped: another server holds the slot, failed)',
      labelNames: ['outcome'], registers,
    }),
    alerts: new Gauge({
      name: 'citymesh_alerts',
      help: 'Alerts at the last evaluation on this server, by state (pending, firing, silenced)',
      labelNames: ['state'], registers,
    }),
    notifications: new Counter({
      name: 'citymesh_alert_notifications_total',
      help: 'Webhook notifications, by receiver, alert status and outcome (sent, failed)',
      labelNames: ['receiver', 'status', 'outcome'], registers,
    }),
    notificationFailures: new Counter({
      name: 'citymesh_alert_notification_failures_total',
      help: 'Failed webhook deliveries (after every retry), by receiver and reason (http_5xx, http_4xx, timeout, network)',
      labelNames: ['receiver', 'reason'], registers,
    }),
    deliveryAttempts: new Counter({
      name: 'citymesh_alert_delivery_attempts_total',
      help: 'HTTP requests made to webhooks, retries included',
      labelNames: ['receiver'], registers,
    }),
    alertmanagerPosts: new Counter({
      name: 'citymesh_alertmanager_posts_total',
      help: 'POST /api/v2/alerts requests to each configured Alertmanager, by outcome (sent, failed)',
      labelNames: ['alertmanager', 'outcome'], registers,
    }),
    alertmanagerAlerts: new Counter({
      name: 'citymesh_alertmanager_alerts_sent_total',
      help: 'Alerts (firing or resolved) accepted by each configured Alertmanager',
      labelNames: ['alertmanager'], registers,
    }),
  };
}

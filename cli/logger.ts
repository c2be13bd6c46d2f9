import nodeCron from 'node-cron';
import { pino, type Logger } from 'pino';

/**
 * Structured JSON logs on stderr, so stdout stays free for --json output and the banner.
 * node-cron's own messages (missed executions, overlap prevention) go through the same
 * logger: its default prints coloured console text between the JSON lines.
 */
export function createLogger(level: string, name = 'citymesh'): Logger {
  const logger = pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  const cron = logger.child({ component: 'node-cron' });
  nodeCron.setLogger({
    info: (message) => cron.info(message),
    warn: (message) => cron.warn(message),
    error: (message, err) => (typeof message === 'string' ? cron.error({ err }, message) : cron.error({ err: message }, 'node-cron error')),
    debug: (message, err) => (typeof message === 'string' ? cron.debug({ err }, message) : cron.debug({ err: message }, 'node-cron')),
  });
  return logger;
}

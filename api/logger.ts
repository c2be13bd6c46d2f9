import { pino, type Logger } from 'pino';

/** Structured JSON logs on stderr, so stdout stays free for --json output and the banner. */
export function createLogger(level: string, name = 'citymesh'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

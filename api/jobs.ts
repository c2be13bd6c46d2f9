/**
 * Jobs that must run once across all servers (monthly report finalisation,
 * alert evaluation). node-cron's distributed mode asks a RunCoordinator before
 * every scheduled run, with the key `<task name>:<scheduled time ISO>`; this
 * one answers by claiming that slot in ClickHouse (sql/coordination.ts), so
 * servers behind a load balancer need nothing but the ClickHouse they share.
 * The claim is per slot, not a renewable lease: a server that dies mid-run
 * loses only that run, and the next slot is claimed afresh. A ClickHouse error
 * means "do not run" (node-cron fails closed), never "run twice".
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { RunCoordinator } from 'node-cron';
import type { Logger } from 'pino';
import { claimJobSlot, type Store } from '../sql/index.js';

/** This process among the servers: host, pid, and a random part (pids repeat across restarts). */
export function serverInstanceId(): string {
  return `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
}

export class ClickHouseRunCoordinator implements RunCoordinator {
  private readonly won = new Map<string, number>();

  constructor(
    private readonly store: Store,
    readonly holder: string,
    private readonly logger: Logger,
  ) {}

  /** node-cron's hook: `key` is `<task name>:<slot ISO>`. */
  async shouldRun(key: string): Promise<boolean> {
    const at = key.indexOf(':');
    return this.claim(at < 0 ? key : key.slice(0, at), at < 0 ? '' : key.slice(at + 1));
  }

  /** Claim one slot of a job; true on exactly one server. */
  async claim(job: string, slot: string): Promise<boolean> {
    const won = await claimJobSlot(this.store.client, job, slot, this.holder);
    if (won) this.won.set(job, (this.won.get(job) ?? 0) + 1);
    this.logger.debug({ job, slot, holder: this.holder, won }, won ? 'job slot claimed: running it here' : 'job slot held by another server');
    return won;
  }

  /** Slots won per job by this process (the /metrics gauge and tests). */
  wins(): Record<string, number> {
    return Object.fromEntries(this.won);
  }
}

/**
 * Diagnostics as the probe runs it: watches the plan tasks' trains for
 * breaches of their link's targets and takes operator requests (`diagnose`);
 * each run (traceroute, path MTU, a fast train on the probe's own STAMP
 * engine) is spooled as a `diagnostics` record and sent at once.
 */
import type { PlanTask, ProbePlan } from '../../../protocol/index.js';
import type { EngineContext, EngineRegistration, EngineRequest, RunningEngine } from '../registration.js';
import type { TrainResult } from '../types.js';
import { DiagnosticsRunner } from './index.js';

/** The policy (null: never on its own) and the tasks that name each peer's host and reflector. */
export type DiagnosticsConfig = Pick<ProbePlan, 'diagnostics' | 'tasks'>;

export const diagnosticsRegistration: EngineRegistration<'diagnostics', DiagnosticsConfig, RunningEngine<DiagnosticsConfig>> = {
  name: 'diagnostics',
  records: ['diagnostics'],
  messages: ['diagnose'],
  configFrom: (plan) => ({ diagnostics: plan.diagnostics ?? null, tasks: plan.tasks }),
  start: (context) => new DiagnosticsEngine(context),
};

class DiagnosticsEngine implements RunningEngine<DiagnosticsConfig> {
  private readonly runner: DiagnosticsRunner;

  constructor(context: EngineContext) {
    this.runner = new DiagnosticsRunner({
      logger: context.logger,
      stamp: () => context.trainEngine('stamp'),
      // Sealed at once: an operator is waiting for this result, not for the next batch interval.
      record: async (sample) => {
        await context.record({ kind: 'diagnostics', sample });
        await context.flush();
      },
    });
  }

  async apply(config: DiagnosticsConfig | null): Promise<void> {
    this.runner.applyPlan(config ?? { diagnostics: null, tasks: [] });
  }

  observe(task: PlanTask, results: readonly TrainResult[]): void {
    this.runner.observe(task, results);
  }

  handle(message: EngineRequest): void {
    if (message.type === 'diagnose') this.runner.request(message);
  }

  /** A run in progress is cut short; what it found is spooled. */
  async stop(): Promise<void> {
    await this.runner.close();
  }

  async close(): Promise<void> {
    await this.runner.close();
  }
}

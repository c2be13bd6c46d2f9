/**
 * Plan application: the probe's engines, started once from the registry, each
 * given its part of every plan that differs from the one running; the plan's
 * train tasks on the one shared scheduler; collector requests routed to the
 * engine that answers them; and, at stop, every engine asked to finish so its
 * records reach the spool before the uplink drains it.
 */
import type { Logger } from 'pino';
import type { PlanTask, ProbePlan } from '../protocol/index.js';
import type { EngineContext, EngineRequest, RunningEngine } from './engines/registration.js';
import { engineRegistry, registeredEngineNames, type RunningEngines } from './engines/registry.js';
import type { Engine, EngineName, TrainResult } from './engines/types.js';
import { Scheduler, type EngineStates } from './scheduler.js';

/** Where a finished train goes (the agent checks it and spools it). */
export type TrainSink = (task: PlanTask, results: TrainResult[]) => void;

export class PlanRunner {
  private plan: ProbePlan | null = null;
  private scheduler: Scheduler | null = null;
  /** Train engines made so far (one per engine a plan used), kept across plans: their sockets and sessions stay. */
  private readonly trainEngines = new Map<EngineName, Engine>();
  readonly engines: RunningEngines;

  constructor(
    context: Omit<EngineContext, 'trainEngine'>,
    private readonly sink: TrainSink,
    private readonly logger: Logger,
  ) {
    const shared: EngineContext = { ...context, trainEngine: (name) => this.trainEngines.get(name) };
    this.engines = Object.fromEntries(registeredEngineNames.map((name) => [name, engineRegistry[name].start(shared)])) as RunningEngines;
  }

  current(): ProbePlan | null {
    return this.plan;
  }

  /** Say what will not work on this host, once. */
  preflight(): void {
    for (const engine of this.each()) engine.preflight?.();
  }

  /** Run a plan; false (nothing touched) when it is the plan already running. */
  async apply(plan: ProbePlan): Promise<boolean> {
    if (this.plan && JSON.stringify(this.plan) === JSON.stringify(plan)) return false;
    this.plan = plan;
    await this.scheduler?.stop();
    for (const name of registeredEngineNames) {
      await (this.engines[name] as RunningEngine<unknown>).apply(engineRegistry[name].configFrom(plan));
    }
    for (const task of plan.tasks) {
      const engine: RunningEngine<unknown> | undefined = this.engines[task.engine];
      if (!this.trainEngines.has(task.engine) && engine?.trains) this.trainEngines.set(task.engine, engine.trains());
    }
    this.scheduler = new Scheduler(this.trainEngines, (task, results) => this.finished(task, results), this.logger);
    this.scheduler.start(plan.tasks);
    return true;
  }

  /** A collector request, for the engine that answers its type. */
  handle(message: EngineRequest): void {
    for (const name of registeredEngineNames) {
      if ((engineRegistry[name].messages as readonly string[]).includes(message.type)) this.engines[name].handle?.(message);
    }
  }

  /** Train engines that cannot run now, and why. */
  engineStates(): EngineStates {
    return this.scheduler?.engineStates() ?? {};
  }

  /** Stop measuring: trains in flight finish, then every engine finishes its work in progress (its records are spooled). */
  async stop(): Promise<void> {
    await this.scheduler?.stop();
    for (const engine of this.each()) await engine.stop();
  }

  /** Release every engine's listeners, sockets and processes (after the spool drained). */
  async close(): Promise<void> {
    for (const engine of this.each()) await engine.close();
  }

  private finished(task: PlanTask, results: TrainResult[]): void {
    for (const engine of this.each()) engine.observe?.(task, results);
    this.sink(task, results);
  }

  private each(): RunningEngine<unknown>[] {
    return registeredEngineNames.map((name) => this.engines[name] as RunningEngine<unknown>);
  }
}

/**
 * The probe's disk spool: every measured train is written to disk before
 * anything else happens to it, and a batch leaves the disk only when the
 * collector has acknowledged it. A SIGKILL loses at most the train being
 * measured.
 *
 * Durability has two steps, by cost: a train's journal line is written (in
 * the kernel's page cache, so it survives the probe process dying) but not
 * fsync'd; the sealed batch is fsync'd before it is sent. A power cut or a
 * kernel crash can therefore lose the trains of the batch being filled (one
 * batch interval), which the collector reports as a gap like any outage of
 * the host. An fsync per train cost more than the whole measurement (20
 * trains a second: 20 opens, fsyncs and closes on the event loop's pool).
 *
 *   journal-<gen>.jsonl  trains of the batch being filled, one line each (written, not fsync'd)
 *   batch-<gen>.json     sealed batches awaiting acknowledgement, oldest first
 *   gaps.json            trains dropped because the spool was full (never silent)
 *
 * The batch id is derived from <gen>, so a journal recovered after a crash
 * becomes the same batch it would have become anyway: a batch sealed just
 * before the crash (journal not yet removed) is detected and not sealed twice.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DiagnosticSampleRecord, NicSampleRecord, ProbeBatch, ThroughputSampleRecord, TrainSample } from '../protocol/index.js';

/** What the spool holds: anything the probe measured, each kind going to its own table. */
export type SpoolRecord =
  | { kind: 'train'; sample: TrainSample }
  | { kind: 'nic'; sample: NicSampleRecord }
  | { kind: 'throughput'; sample: ThroughputSampleRecord }
  | { kind: 'diagnostics'; sample: DiagnosticSampleRecord };

export interface SpoolOptions {
  dir: string;
  centre: string;
  /** Upper bound of sealed batches on disk, bytes; the oldest are dropped (and counted) beyond it. */
  maxBytes: number;
}

export interface SpoolStats {
  batches: number;
  bytes: number;
  journalTrains: number;
  /** Trains dropped because the spool was full: a gap in the data, reported to the collector. */
  droppedTrains: number;
  droppedBatches: number;
}

interface SealedBatch {
  id: string;
  gen: string;
  bytes: number;
  trains: number;
}

const JOURNAL = /^journal-([0-9a-z-]+)\.jsonl$/;
const BATCH = /^batch-([0-9a-z-]+)\.json$/;

export class Spool {
  private readonly sealed: SealedBatch[] = [];
  private journalGen: string;
  private journalTrains = 0;
  private gaps = { droppedTrains: 0, droppedBatches: 0 };
  private writes: Promise<void> = Promise.resolve();
  private seq = 0;
  /**
   * The journal being filled, open for appending until it is sealed. Lines are
   * written synchronously: a write(2) into the page cache takes microseconds,
   * less than handing it to libuv's thread pool and back.
   */
  private journal: { gen: string; fd: number } | null = null;

  private constructor(private readonly options: SpoolOptions) {
    this.journalGen = this.nextGen();
  }

  /** Open (creating if needed) and recover: journals left by a crash become sealed batches. */
  static open(options: SpoolOptions): Spool {
    mkdirSync(options.dir, { recursive: true });
    const spool = new Spool(options);
    spool.recover();
    return spool;
  }

  /** Append one measured train; resolves once it is written (in the page cache: see the durability note above). */
  append(sample: TrainSample): Promise<void> {
    return this.appendRecord({ kind: 'train', sample });
  }

  /** Append one record of any kind; resolves once it is written. */
  appendRecord(record: SpoolRecord): Promise<void> {
    const line = JSON.stringify(record) + '\n';
    const gen = this.journalGen;
    this.journalTrains++;
    try {
      if (this.journal?.gen !== gen) {
        this.closeJournal();
        this.journal = { gen, fd: openSync(join(this.options.dir, `journal-${gen}.jsonl`), 'a') };
      }
      const bytes = Buffer.from(line);
      for (let at = 0; at < bytes.length;) at += writeSync(this.journal.fd, bytes, at);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /** Turn the current journal into a sealed batch (if it has trains). */
  async seal(): Promise<void> {
    const gen = this.journalGen;
    // Nothing new, but a seal already under way (the periodic one) must be done before this resolves: a stop seals,
    // then sends what is pending, and must not find nothing while that batch is still being written.
    if (this.journalTrains === 0) return this.writes;
    this.journalGen = this.nextGen();
    this.journalTrains = 0;
    if (this.journal?.gen === gen) this.closeJournal(); // every line of it is written: appends are synchronous
    const seal = this.writes.then(() => this.sealJournal(gen));
    this.writes = seal.catch(() => undefined);
    await seal;
    this.enforceBound();
  }

  /** Sealed batches awaiting acknowledgement, oldest first (ids only; read() loads one). */
  pending(): readonly { id: string }[] {
    return this.sealed;
  }

  async read(id: string, createdAtUs?: number): Promise<ProbeBatch | null> {
    const entry = this.sealed.find((b) => b.id === id);
    if (!entry) return null;
    const batch = JSON.parse(await readFile(this.batchPath(entry.gen), 'utf8')) as ProbeBatch;
    return { ...batch, ...(createdAtUs ? { createdAtUs } : {}) };
  }

  /** The collector stored it: forget it. */
  async ack(id: string): Promise<void> {
    const index = this.sealed.findIndex((b) => b.id === id);
    if (index < 0) return;
    const [entry] = this.sealed.splice(index, 1);
    await rm(this.batchPath(entry!.gen), { force: true });
  }

  /**
   * Give a sealed batch a new id, keeping its records and its place in the
   * queue: the collector refused the old id as already stored with other
   * content (a reset spool reusing ids). Written whole under the new name
   * before the old file is removed, so a crash in between leaves the records
   * at least once on disk (the collector stores each record id once).
   */
  async renew(id: string): Promise<string | null> {
    const index = this.sealed.findIndex((b) => b.id === id);
    if (index < 0) return null;
    const entry = this.sealed[index]!;
    const batch = JSON.parse(await readFile(this.batchPath(entry.gen), 'utf8')) as ProbeBatch;
    const gen = this.nextGen();
    const renewed = { ...batch, batchId: this.batchId(gen) };
    const text = JSON.stringify(renewed);
    await this.writeBatchFile(gen, text);
    this.sealed[index] = { id: renewed.batchId, gen, bytes: Buffer.byteLength(text), trains: entry.trains };
    await rm(this.batchPath(entry.gen), { force: true });
    return renewed.batchId;
  }

  /** Drop a batch the collector will never accept (it was refused as invalid), counting its trains as a gap. */
  async discard(id: string): Promise<void> {
    const entry = this.sealed.find((b) => b.id === id);
    if (!entry) return;
    this.recordGap(entry);
    await this.ack(id);
  }

  stats(): SpoolStats {
    return {
      batches: this.sealed.length,
      bytes: this.sealed.reduce((sum, b) => sum + b.bytes, 0),
      journalTrains: this.journalTrains,
      ...this.gaps,
    };
  }

  /** Wait for queued disk writes. */
  flushed(): Promise<void> {
    return this.writes;
  }

  /** Wait for queued writes and close the journal file (the spool stays usable: the next append reopens it). */
  async close(): Promise<void> {
    await this.writes;
    this.closeJournal();
  }

  private closeJournal(): void {
    const journal = this.journal;
    this.journal = null;
    if (journal) closeSync(journal.fd);
  }

  private async sealJournal(gen: string): Promise<void> {
    const journal = join(this.options.dir, `journal-${gen}.jsonl`);
    const records = parseJournal(await readFile(journal, 'utf8'));
    if (records.length > 0) {
      const entry = await this.writeBatch(gen, records);
      this.sealed.push(entry);
    }
    await rm(journal, { force: true });
  }

  private async writeBatch(gen: string, records: SpoolRecord[]): Promise<SealedBatch> {
    const id = this.batchId(gen);
    const text = JSON.stringify(toBatch(id, records));
    await this.writeBatchFile(gen, text);
    return { id, gen, bytes: Buffer.byteLength(text), trains: records.length };
  }

  /** Written to a temporary name, fsync'd, renamed: a batch file is on disk whole or not at all. */
  private async writeBatchFile(gen: string, text: string): Promise<void> {
    const tmp = this.batchPath(gen) + '.tmp';
    const file = await open(tmp, 'w');
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.batchPath(gen));
  }

  private recover(): void {
    const names = readdirSync(this.options.dir).sort();
    for (const name of names) {
      if (name.endsWith('.tmp')) rmSync(join(this.options.dir, name), { force: true });
    }
    const gapsFile = join(this.options.dir, 'gaps.json');
    if (existsSync(gapsFile)) this.gaps = JSON.parse(readFileSync(gapsFile, 'utf8')) as typeof this.gaps;
    for (const name of names) {
      const journal = JOURNAL.exec(name);
      if (!journal) continue;
      const gen = journal[1]!;
      const path = join(this.options.dir, name);
      // Sealed just before a crash: the batch file exists, the journal is a leftover.
      if (!existsSync(this.batchPath(gen))) {
        const records = parseJournal(readFileSync(path, 'utf8'));
        if (records.length > 0) {
          const text = JSON.stringify(toBatch(this.batchId(gen), records));
          writeFileSync(this.batchPath(gen) + '.tmp', text, { flush: true });
          renameSync(this.batchPath(gen) + '.tmp', this.batchPath(gen));
        }
      }
      rmSync(path, { force: true });
    }
    for (const name of readdirSync(this.options.dir).sort()) {
      const batch = BATCH.exec(name);
      if (!batch) continue;
      const gen = batch[1]!;
      const path = join(this.options.dir, name);
      try {
        const parsed = JSON.parse(readFileSync(path, 'utf8')) as ProbeBatch;
        const count = parsed.samples.length + (parsed.nic?.length ?? 0) + (parsed.throughput?.length ?? 0) + (parsed.diagnostics?.length ?? 0);
        this.sealed.push({ id: parsed.batchId, gen, bytes: statSync(path).size, trains: count });
      } catch {
        // A batch file is only ever renamed into place whole; an unreadable one is disk damage.
        this.gaps.droppedBatches++;
        rmSync(path, { force: true });
      }
    }
    this.enforceBound();
  }

  private enforceBound(): void {
    let total = this.sealed.reduce((sum, b) => sum + b.bytes, 0);
    while (total > this.options.maxBytes && this.sealed.length > 1) {
      const oldest = this.sealed.shift()!;
      total -= oldest.bytes;
      this.recordGap(oldest);
      rmSync(this.batchPath(oldest.gen), { force: true });
    }
  }

  private recordGap(entry: SealedBatch): void {
    this.gaps.droppedTrains += entry.trains;
    this.gaps.droppedBatches++;
    writeFileSync(join(this.options.dir, 'gaps.json'), JSON.stringify(this.gaps));
  }

  /** Sortable and unique across restarts: milliseconds, a counter, and a random tail. */
  private nextGen(): string {
    const ms = Date.now().toString(36).padStart(9, '0');
    const n = (this.seq++).toString(36).padStart(4, '0');
    return `${ms}-${n}-${randomBytes(3).toString('hex')}`;
  }

  private batchId(gen: string): string {
    return `${this.options.centre}.${gen}`;
  }

  private batchPath(gen: string): string {
    return join(this.options.dir, `batch-${gen}.json`);
  }
}

/** Complete lines only: a line torn by a crash mid-write is the record in progress, not data. */
function parseJournal(text: string): SpoolRecord[] {
  const records: SpoolRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const value = JSON.parse(line) as SpoolRecord | TrainSample;
      // Journals written before records had a kind hold bare trains.
      records.push('kind' in value ? value : { kind: 'train', sample: value });
    } catch {
      // torn tail
    }
  }
  return records;
}

function toBatch(batchId: string, records: SpoolRecord[]): ProbeBatch {
  const batch: ProbeBatch = { type: 'batch', batchId, samples: [] };
  for (const r of records) {
    if (r.kind === 'train') batch.samples.push(r.sample);
    else if (r.kind === 'nic') (batch.nic ??= []).push(r.sample);
    else if (r.kind === 'diagnostics') (batch.diagnostics ??= []).push(r.sample);
    else (batch.throughput ??= []).push(r.sample);
  }
  return batch;
}

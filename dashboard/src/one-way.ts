// A direction's one-way delay against the city's one-way target (the "1 ms
// circle"), in words: the matrix cell's tooltip and the selected path's line
// above its charts say the same thing. The figure always names its basis,
// because RTT / 2 hides any asymmetry between the two directions and an
// operator must not read it as a measurement.
import type { OneWayVerdict, PathState, ProbeEngineName } from '../../api/contract.js';
import { fmtMs } from './format.js';

/** The verdict against the one-way target (the server's `ok` and `warn` both meet it). */
const STATE_TEXT: Record<PathState, string> = {
  ok: 'met',
  warn: 'met (p99 above 80% of the target)',
  breach: 'breached',
  stale: 'stale (no recent train)',
  nodata: 'no data',
};

/** Where the figure comes from; null when there is no figure. */
export function oneWayBasisText(basis: OneWayVerdict['basis'], engine: ProbeEngineName): string | null {
  if (basis === 'measured') return 'measured';
  if (basis === null) return null;
  // ICMP has no timestamps of the far end at all: its clocks are not the reason.
  return engine === 'icmp' ? 'RTT/2: ICMP has no one-way timestamps' : 'RTT/2: clocks not synchronised';
}

/** "one-way p99 0.700 ms (RTT/2: clocks not synchronised)", or "one-way p99 —" without data. */
export function oneWayFigure(ow: OneWayVerdict, engine: ProbeEngineName): string {
  const basis = ow.p99Ms === null ? null : oneWayBasisText(ow.basis, engine);
  return `one-way p99 ${fmtMs(ow.p99Ms)}${basis ? ` (${basis})` : ''}`;
}

/** "target ≤ 1.00 ms: met". */
export function oneWayVerdictText(ow: OneWayVerdict): string {
  return `target ≤ ${fmtMs(ow.targetMs)}: ${STATE_TEXT[ow.state]}`;
}

/** The one line: figure with its basis, then the verdict against the target. */
export function oneWayText(ow: OneWayVerdict, engine: ProbeEngineName): string {
  return `${oneWayFigure(ow, engine)} · one-way ${oneWayVerdictText(ow)}`;
}

/**
 * Fills the selected path's one-way line (`data-state` and `data-basis` for
 * the page's colours and for tests); empty when nothing is known.
 */
export function renderOneWay(el: HTMLElement, ow: OneWayVerdict | null, engine: ProbeEngineName, windowS: number): void {
  if (!ow) {
    el.textContent = '';
    el.dataset.state = '';
    el.dataset.basis = '';
    el.hidden = true;
    return;
  }
  el.hidden = false;
  el.dataset.state = ow.state;
  el.dataset.basis = ow.p99Ms === null ? '' : (ow.basis ?? '');
  el.textContent = `${oneWayText(ow, engine)}${windowS > 0 ? ` (last ${windowS} s, ${engine})` : ''}`;
}

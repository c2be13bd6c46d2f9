// A centre's name as the operators know it, with its local-script name beside
// it when the topology gives one (Shanghai 上海). Both are config input: they
// only ever become text nodes, never markup.
import type { CentreView } from '../../api/contract.js';

type Named = Pick<CentreView, 'name' | 'nameLocal'>;

/** The local-script name, or null when there is none (or it only repeats the name). */
export function localName(c: Named): string | null {
  const local = c.nameLocal?.trim();
  return local && local !== c.name ? local : null;
}

/** "Shanghai (上海)" for running text (titles, tooltips); the name alone without a local one. */
export function centreLabel(c: Named): string {
  const local = localName(c);
  return local ? `${c.name} (${local})` : c.name;
}

/** The name and, beside it, the local name in a span of its own (`.name-local`), as text nodes. */
export function centreNameNodes(c: Named): Node[] {
  const local = localName(c);
  if (!local) return [document.createTextNode(c.name)];
  const span = document.createElement('span');
  span.className = 'name-local';
  span.textContent = local;
  return [document.createTextNode(`${c.name} `), span];
}

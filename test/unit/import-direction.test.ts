/**
 * The arrows between folders stay the way the README draws them. Every static
 * and dynamic import in the product's TypeScript is read (with the compiler's
 * own parser, so comments and strings cannot fool it) and checked against the
 * folders each folder may import.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** What each product folder may import besides itself. `cli/` is the composition root; tests may import anything. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  protocol: [],
  topology: ['protocol'],
  sql: ['protocol', 'topology'],
  probes: ['protocol', 'topology'],
  collector: ['protocol', 'topology', 'sql'],
  api: ['protocol', 'topology', 'sql', 'collector'],
  dashboard: ['api'],
  cli: ['protocol', 'topology', 'sql', 'probes', 'collector', 'api'],
};

/**
 * Folders that may reach past another folder's index.ts: the composition root
 * loads commands lazily module by module, and the dashboard takes the response
 * types (and its build, the public directory) from the modules that own them.
 */
const BEYOND_INDEX: Record<string, readonly string[]> = { cli: ['*'], dashboard: ['api/contract', 'api/public-dir'] };

/** Folders whose imports must be type-only (erased at build): the browser bundle carries no server code. */
const TYPE_ONLY_FROM: Record<string, readonly string[]> = { 'dashboard/src': ['api'] };

interface ImportEdge {
  file: string;
  line: number;
  target: string;
  typeOnly: boolean;
}

function importsOf(file: string): ImportEdge[] {
  const text = readFileSync(join(root, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const edges: ImportEdge[] = [];
  const add = (spec: ts.StringLiteral, typeOnly: boolean) => {
    if (!spec.text.startsWith('.')) return;
    const target = relative(root, resolve(dirname(join(root, file)), spec.text));
    edges.push({ file, line: source.getLineAndCharacterOfPosition(spec.getStart()).line + 1, target, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const allTypes =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier, allTypes);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node.moduleSpecifier, node.isTypeOnly);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg && ts.isStringLiteral(arg)) add(arg, false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      add(node.argument.literal, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

const topFolder = (path: string) => path.split('/')[0] ?? '';

function productFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: root, encoding: 'utf8' });
  return listed
    .split('\n')
    .filter((f) => f.length > 0 && Object.hasOwn(MAY_IMPORT, topFolder(f)))
    .sort();
}

/** Every import that crosses a folder boundary the table does not allow, as "file:line → target". */
function violations(files: readonly string[], edgesOf: (file: string) => ImportEdge[]): string[] {
  const found: string[] = [];
  for (const file of files) {
    const from = topFolder(file);
    for (const edge of edgesOf(file)) {
      const to = topFolder(edge.target);
      if (to === from) continue;
      if (!(MAY_IMPORT[from] ?? []).includes(to)) {
        found.push(`${file}:${edge.line} → ${edge.target} (${from}/ may import ${(MAY_IMPORT[from] ?? []).join(', ') || 'nothing of citymesh'})`);
        continue;
      }
      const module = edge.target.replace(/\.js$/, '');
      const allowedBeyond = BEYOND_INDEX[from] ?? [];
      if (module !== `${to}/index` && !allowedBeyond.includes('*') && !allowedBeyond.includes(module)) {
        found.push(`${file}:${edge.line} → ${edge.target} (import ${to}/ through ${to}/index.ts)`);
      }
      for (const [folder, typeOnlyTargets] of Object.entries(TYPE_ONLY_FROM)) {
        if (file.startsWith(`${folder}/`) && typeOnlyTargets.includes(to) && !edge.typeOnly) {
          found.push(`${file}:${edge.line} → ${edge.target} (${folder}/ may import only types from ${to}/)`);
        }
      }
    }
  }
  return found;
}

describe('import direction', () => {
  const files = productFiles();

  it('reads every product folder', () => {
    const folders = new Set(files.map(topFolder));
    expect([...folders].sort()).toEqual(Object.keys(MAY_IMPORT).sort());
    expect(files.length).toBeGreaterThan(100);
  });

  it('no folder imports one it may not (the kernel imports nothing above it; the probe never imports the server)', () => {
    expect(violations(files, importsOf)).toEqual([]);
  });

  it('the check can fail: a probe importing the collector, a reach past an index, and the browser importing server code, are named', () => {
    const planted = (file: string): ImportEdge[] =>
      file === 'probes/agent.ts'
        ? [
            { file, line: 1, target: 'collector/index.js', typeOnly: false },
            { file, line: 2, target: 'protocol/wire.js', typeOnly: true },
          ]
        : file === 'dashboard/src/main.ts'
          ? [{ file, line: 2, target: 'api/contract.js', typeOnly: false }]
          : [];
    expect(violations(['probes/agent.ts', 'dashboard/src/main.ts'], planted)).toEqual([
      'probes/agent.ts:1 → collector/index.js (probes/ may import protocol, topology)',
      'probes/agent.ts:2 → protocol/wire.js (import protocol/ through protocol/index.ts)',
      'dashboard/src/main.ts:2 → api/contract.js (dashboard/src/ may import only types from api/)',
    ]);
  });
});

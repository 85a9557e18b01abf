import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { test } from 'node:test';

/**
 * The layout rules of docs/architecture.md, read from the source: imports flow one way, from
 * the surfaces down to the store. A new import that breaks a rule fails here, naming it.
 */

const SRC = join(__dirname, '..', '..', '..', 'src');

/** Lower layers: what vipd keeps, who holds the VIP, how a node holds it, the cluster's secrets, how things print. */
const CORE = ['config', 'store', 'election', 'holding', 'security', 'output', 'health'];
/** What people and other programs see: they read the store and listen to the agent's events. */
const SURFACES = ['api', 'cli', 'doctor', 'hooks', 'metrics'];
/** Above the core, below the surfaces. */
const MIDDLE = ['cluster', 'status', 'agent'];

interface ImportEdge {
  file: string;
  from: string;
  to: string;
}

function sourceFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** The top-level folder (or root file) a path under src/ belongs to. */
function area(path: string): string {
  const parts = relative(SRC, path).split(sep);
  return parts.length === 1 ? parts[0]!.replace(/\.ts$/, '') : parts[0]!;
}

function importEdges(): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:from|import|require)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = normalize(join(dirname(file), match[1]!));
      if (relative(SRC, target).startsWith('..')) continue;
      const from = area(file);
      const to = area(target);
      if (from !== to) edges.push({ file: relative(SRC, file), from, to });
    }
  }
  return edges;
}

const edges = importEdges();

function show(found: ImportEdge[]): string {
  return found.map((edge) => `${edge.file} imports ${edge.to}/`).join('\n');
}

test('the source tree has the folders the architecture names', () => {
  for (const folder of [...CORE, ...MIDDLE, ...SURFACES]) {
    assert.ok(statSync(join(SRC, folder)).isDirectory(), `src/${folder}/ is missing`);
  }
  assert.ok(edges.length > 0, 'no imports were read: the test looks in the wrong place');
});

test('no import cycle between top-level folders', () => {
  const graph = new Map<string, Set<string>>();
  for (const edge of edges) {
    if (!graph.has(edge.from)) graph.set(edge.from, new Set());
    graph.get(edge.from)!.add(edge.to);
  }
  const reaches = (start: string, goal: string): boolean => {
    const seen = new Set<string>();
    const stack = [start];
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (next === goal) return true;
      if (seen.has(next)) continue;
      seen.add(next);
      stack.push(...(graph.get(next) ?? []));
    }
    return false;
  };
  const cycles = edges.filter((edge) => reaches(edge.to, edge.from));
  assert.deepEqual(show(cycles), '', 'these imports close a loop between folders');
});

test('the core never imports the agent, the middle or a surface', () => {
  const above = new Set([...MIDDLE, ...SURFACES, 'main', 'daemon']);
  const wrong = edges.filter((edge) => CORE.includes(edge.from) && above.has(edge.to));
  assert.deepEqual(show(wrong), '');
});

test('the middle never imports a surface', () => {
  const wrong = edges.filter((edge) => MIDDLE.includes(edge.from) && (SURFACES.includes(edge.to) || edge.to === 'main' || edge.to === 'daemon'));
  assert.deepEqual(show(wrong), '');
});

test('surfaces never reach into each other', () => {
  const wrong = edges.filter((edge) => SURFACES.includes(edge.from) && SURFACES.includes(edge.to));
  assert.deepEqual(show(wrong), '');
});

test('only the entry points import the composition root', () => {
  const wrong = edges.filter((edge) => edge.to === 'daemon' && edge.from !== 'main');
  assert.deepEqual(show(wrong), '');
  const intoMain = edges.filter((edge) => edge.to === 'main');
  assert.deepEqual(show(intoMain), '');
});

test('the store sits at the bottom: it imports only the config and the clock', () => {
  const wrong = edges.filter((edge) => edge.from === 'store' && !['config', 'clock'].includes(edge.to));
  assert.deepEqual(show(wrong), '');
});

test('health checks sit in the core beside the store: they import only the config, the store and the clock', () => {
  const wrong = edges.filter((edge) => edge.from === 'health' && !['config', 'store', 'clock'].includes(edge.to));
  assert.deepEqual(show(wrong), '');
});

/**
 * Which areas may import which, read from the source: the emulator is the other side of the wire and never
 * imports the client's authorities (their request builders would make a wrong request look right to it);
 * config, identity, store and lib sit below the authority registry and know no authority.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import ts from 'typescript';

const SRC = resolve(import.meta.dirname, '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The src/ area (first folder) each relative import of `file` lands in. */
function importedAreas(file: string): Array<{ spec: string; area: string }> {
  const text = readFileSync(file, 'utf8');
  const out: Array<{ spec: string; area: string }> = [];
  for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g)) {
    const spec = m[1] ?? m[2]!;
    const target = relative(SRC, resolve(dirname(file), spec));
    out.push({ spec, area: target.split('/')[0]! });
  }
  return out;
}

function violations(area: string, forbidden: ReadonlyArray<string>): string[] {
  return files(join(SRC, area)).flatMap((f) =>
    importedAreas(f)
      .filter((i) => forbidden.includes(i.area))
      .map((i) => `${relative(SRC, f)} imports ${i.spec}`),
  );
}

describe('architecture: dependencies point one way', () => {
  test('the emulator imports nothing of the authorities, the token manager or the server', () => {
    assert.deepEqual(violations('emulator', ['authorities', 'tokens', 'server', 'cli', 'doctor', 'agent.ts']), []);
  });

  test('config, identity, store and lib know no authority (the registry passes what they need)', () => {
    for (const area of ['config', 'identity', 'store', 'lib']) {
      assert.deepEqual(violations(area, ['authorities', 'tokens', 'server', 'cli', 'doctor', 'agent.ts']), [], area);
    }
  });

  test('the authorities import no area above them', () => {
    assert.deepEqual(violations('authorities', ['tokens', 'server', 'cli', 'doctor', 'agent.ts', 'store', 'emulator']), []);
  });

  test('the proxy and the outbox send through forward/ and ask the token manager; they never import the server, the CLI or doctor', () => {
    for (const area of ['forward', 'outbox']) {
      assert.deepEqual(violations(area, ['server', 'cli', 'doctor', 'agent.ts', 'emulator', 'authorities']), [], area);
    }
    assert.deepEqual(violations('forward', ['outbox', 'store']), [], 'forward/ knows nothing of the outbox or SQL');
  });

  test('the check itself sees imports (it would catch one)', () => {
    const found = importedAreas(join(SRC, 'agent.ts')).map((i) => i.area);
    assert.ok(found.includes('authorities') && found.includes('tokens'), found.join(', '));
  });
});

/** Functions (declarations, methods, arrows, accessors, constructors) longer than maxLines, as "lines file:line name". */
function longFunctions(file: string, maxLines: number): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const last = source.getLineAndCharacterOfPosition(node.end).line;
      const name = 'name' in node && node.name ? node.name.getText(source) : '(anonymous)';
      if (last - first + 1 > maxLines) out.push(`${last - first + 1} lines ${relative(SRC, file)}:${first + 1} ${name}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

describe('architecture: rooms you can read', () => {
  test('no function anywhere in src/ is longer than 80 lines (the emulator, the set-up and the routes included)', () => {
    assert.deepEqual(files(SRC).flatMap((f) => longFunctions(f, 80)), []);
  });

  test('the check itself measures functions (it would catch one)', () => {
    const found = files(join(SRC, 'tokens')).flatMap((f) => longFunctions(f, 20));
    assert.ok(found.some((f) => f.includes('manager.ts')), found.join('; '));
  });

  test('the token manager maps nothing to the socket API: no wire field names in src/tokens', () => {
    const wire = /\b(expires_at|last_login_at|last_success_at|last_error|next_attempt_in_s|read_at|retry_after)\b/;
    const hits = files(join(SRC, 'tokens')).filter((f) => wire.test(readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '')));
    assert.deepEqual(hits.map((f) => relative(SRC, f)), []);
  });
});

/** Every file of src/ with the src/ files it imports (relative imports and re-exports, type-only ones too). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of files(SRC)) {
    const text = readFileSync(f, 'utf8');
    const targets = [...text.matchAll(/(?:import|export)\s[^'";]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g)].map((m) =>
      relative(SRC, resolve(dirname(f), (m[1] ?? m[2]!).replace(/\.js$/, '.ts'))),
    );
    graph.set(relative(SRC, f), targets);
  }
  return graph;
}

/** Import cycles of a graph, each as the files around it ("a.ts -> b.ts -> a.ts"); none when there is none. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const out = new Map<string, string>();
  const done = new Set<string>();
  // Depth-first from each file; a file met again while still on the path closes a cycle (each set of files once).
  const walk = (file: string, path: string[]): void => {
    const at = path.indexOf(file);
    if (at >= 0) {
      const cycle = [...path.slice(at), file];
      const members = [...new Set(cycle)].sort().join(' ');
      if (!out.has(members)) out.set(members, cycle.join(' -> '));
      return;
    }
    if (done.has(file)) return;
    for (const next of graph.get(file) ?? []) if (graph.has(next)) walk(next, [...path, file]);
    done.add(file);
  };
  for (const file of graph.keys()) walk(file, []);
  return [...out.values()];
}

describe('architecture: no import cycles', () => {
  test('no file of src/ imports, through any chain, a file that imports it', () => {
    assert.deepEqual(cycles(importGraph()), []);
  });

  test('the check itself finds cycles (it would catch one), and reads the imports of src/', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts', 'd.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['d.ts']],
      ['e.ts', ['a.ts']],
    ]);
    assert.deepEqual(cycles(graph), ['a.ts -> b.ts -> c.ts -> a.ts', 'd.ts -> d.ts']);
    assert.ok(importGraph().get('store/outbox.ts')?.includes('store/sqlite.ts'));
  });
});

describe('architecture: what an idle agent loads', () => {
  // An ESM import of a built-in module reads every export of it once, lazy getters included: node:http's load undici
  // (WebSocket, MessageEvent; 14 MiB and 19 ms at start on Node 24), node:fs's and node:util's load their promises and
  // MIME code. process.getBuiltinModule takes the module without that.
  const builtinImports = (text: string): string[] =>
    [...text.matchAll(/^import\s+(?!type\b)[^;]*?from\s+'node:[^']+';/gm)].map((m) => m[0].replace(/\s+/g, ' '));

  test('src/ takes Node\'s built-in modules with process.getBuiltinModule, never an ESM value import', () => {
    assert.deepEqual(files(SRC).flatMap((f) => builtinImports(readFileSync(f, 'utf8')).map((i) => `${relative(SRC, f)}: ${i}`)), []);
  });

  test('the check itself sees such imports (it would catch one), and lets type imports be', () => {
    const text = "import { createServer } from 'node:http';\nimport type { Server } from 'node:http';\nimport {\n  a,\n  b,\n} from 'node:fs';\n";
    assert.deepEqual(builtinImports(text), ["import { createServer } from 'node:http';", "import { a, b, } from 'node:fs';"]);
  });
});


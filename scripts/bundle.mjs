#!/usr/bin/env node
/**
 * Bundles dist/ for the packages (scripts/package.mjs runs it): `node scripts/bundle.mjs FROM_DIST DEST_DIST`.
 * esbuild, ESM with split chunks; the native dependencies stay in node_modules. The bundled dependencies' imports
 * of Node's built-in modules become process.getBuiltinModule calls (see `builtinsByGetBuiltinModule`), as src/ has
 * them: on Node 24 an ES import of node:http (got does one) builds its module namespace from every export,
 * lazy getters included, and loads what they stand for (undici, web streams, worker_threads): measured +14 MiB
 * resident after the first login.
 */
import { builtinModules, createRequire } from 'node:module';
import { join } from 'node:path';

const [from, dest] = process.argv.slice(2);
if (!from || !dest) {
  console.error('usage: node scripts/bundle.mjs FROM_DIST DEST_DIST');
  process.exit(2);
}
const NATIVE_DEPENDENCIES = ['better-sqlite3', 'serialport'];
const BUILTINS = new Set(builtinModules.map((m) => m.replace(/^node:/, '')));

/**
 * `import x from 'node:http'` (and 'http') in a bundled file resolves to a CommonJS module of one line,
 * `module.exports = process.getBuiltinModule('node:http')`: esbuild then reads its names as properties when they
 * are used (getters on an object, never all evaluated at once), and a require() stays a require().
 */
const builtinsByGetBuiltinModule = {
  name: 'builtins-by-getBuiltinModule',
  setup(build) {
    build.onResolve({ filter: /^(node:)?[a-z_][a-z0-9_/]*$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (!BUILTINS.has(name) || (args.kind !== 'import-statement' && args.kind !== 'dynamic-import')) return undefined;
      return { path: name, namespace: 'node-builtin' };
    });
    build.onLoad({ filter: /.*/, namespace: 'node-builtin' }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(`node:${args.path}`)});\n`,
      loader: 'js',
    }));
  },
};

const { build } = createRequire(import.meta.url)('esbuild');
await build({
  entryPoints: [join(from, 'cli/main.js'), join(from, 'agent.js')],
  outbase: from,
  outdir: dest,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.16',
  external: NATIVE_DEPENDENCIES,
  plugins: [builtinsByGetBuiltinModule],
  // The CommonJS dependencies bundled (hpagent, node-machine-id, some of got's) call require() for Node's built-in
  // modules and the native ones: an ES module has no require of its own, so each file gets one.
  banner: { js: "const require = process.getBuiltinModule('node:module').createRequire(import.meta.url);" },
  logLevel: 'warning',
});

#!/usr/bin/env node
/**
 * The command's entry (the package's `bin`, the unit's ExecStart): Node's module compile cache first, so that what
 * the CLI then loads is compiled once per install rather than at every start, then the CLI itself (cli.ts).
 * systemd names the service's cache folder in $CACHE_DIRECTORY (CacheDirectory=); Node 22.1 and later keep the
 * cache there (Node 20 has no compile cache: nothing happens).
 */
const cacheDir = process.env.CACHE_DIRECTORY?.split(':')[0];
if (cacheDir) {
  const { enableCompileCache } = process.getBuiltinModule('node:module') as { enableCompileCache?: (dir: string) => unknown };
  enableCompileCache?.(cacheDir);
}
await import('./cli.js');

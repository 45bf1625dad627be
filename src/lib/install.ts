/**
 * Where the installed program's own files are: the folder holding its package.json, found by walking up from this
 * module. The build's layout (dist/lib/install.js) and the packages' bundle (dist/cli/*.js chunks) sit at different
 * depths, so no fixed '..' chain serves both.
 */
const { existsSync, readFileSync } = process.getBuiltinModule('node:fs');
const { dirname, join } = process.getBuiltinModule('node:path');

const NAME = 'pos-token-agent';

/** The folder of `from` or above whose package.json names this program; throws when there is none. */
export function findInstallRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === NAME) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json of ${NAME} above ${from}`);
  }
}

/** This program's root: device-profiles/, docs/ and package.json are in it. */
export const INSTALL_ROOT = findInstallRoot(import.meta.dirname);

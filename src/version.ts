const { createRequire } = process.getBuiltinModule('node:module');

const require = createRequire(import.meta.url);
export const VERSION: string = (require('../package.json') as { version: string }).version;

// Builds the two self-contained programs of the contract:
//   dist/bootrelay.js (the agent) and dist/relayctl.js (the CLI).
// CommonJS, Node 20, everything bundled: no node_modules beside them.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: process.env.MINIFY !== '0',
  sourcemap: false,
  legalComments: 'none',
  define: { __BOOTRELAY_VERSION__: JSON.stringify(pkg.version) },
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
};
await Promise.all([
  build({ ...common, entryPoints: ['agent/main.ts'], outfile: 'dist/bootrelay.js' }),
  build({ ...common, entryPoints: ['agent/cli/relayctl.ts'], outfile: 'dist/relayctl.js' }),
]);

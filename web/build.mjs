// Build the viewer into src/civictwin/api/static/ (served by civictwin.api.viewer at /viewer/):
// index.html, app.js + app.css (our code and MapLibre GL, bundled by esbuild), consult.js + consult.css (the
// consultation pages' map, served at /consultations/<id>) and MapLibre's worker.
// Everything the page needs is in that folder: it works offline, with no CDN.

import { build } from 'esbuild';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'src', 'civictwin', 'api', 'static');
const require = createRequire(import.meta.url);
const maplibreDist = join(dirname(require.resolve('maplibre-gl/package.json')), 'dist');
const maplibreVersion = JSON.parse(await readFile(join(maplibreDist, '..', 'package.json'), 'utf8')).version;

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

const result = await build({
  entryPoints: { app: join(here, 'src', 'main.js'), consult: join(here, 'src', 'consult.js') },
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  legalComments: 'eof',
  outdir: out,
  metafile: true,
  logLevel: 'warning',
});

await copyFile(join(maplibreDist, 'maplibre-gl-worker.mjs'), join(out, 'maplibre-gl-worker.mjs'));
await copyFile(join(here, 'src', 'index.html'), join(out, 'index.html'));
const files = [...Object.keys(result.metafile.outputs).map((p) => p.split('/').pop()), 'maplibre-gl-worker.mjs', 'index.html'];
await writeFile(
  join(out, 'build.json'),
  JSON.stringify({ built: new Date().toISOString(), maplibre_gl: maplibreVersion, files: files.sort() }, null, 2),
);
console.log(`viewer built into ${out}: ${files.join(', ')}`);

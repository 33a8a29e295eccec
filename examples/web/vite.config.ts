// `npm run web` (vite dev server) and `npm run build:web` (a static site in examples/web/dist).
// Cross-origin isolation (COOP/COEP) lets the page use SharedArrayBuffer and precise timers;
// a static host serving the built site should send the same two headers.
import { defineConfig } from 'vite';

const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  base: './',
  server: { headers: isolation },
  preview: { headers: isolation },
  worker: { format: 'es' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
});

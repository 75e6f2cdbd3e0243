import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// `npm run dev` serves the client on :5173 and sends API calls to the API on :8000.
const api = 'http://127.0.0.1:8000';

export default defineConfig({
  plugins: [svelte()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1000 },
  server: {
    proxy: {
      '/api': api,
      '/graphql': { target: api, ws: true },
      '/health': api,
      '/metrics': api,
    },
  },
});

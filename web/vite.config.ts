// The dashboard is built to web/dist, which the daemon serves at `/`. Hash routing and
// relative asset paths keep it working under any mount point and fully offline.
// Plain CommonJS object (no `import`): the repo's package.json says "type": "commonjs" and
// Vite warns about ESM syntax in such a config file.
module.exports = {
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 600 },
  server: {
    // `npx vite` in web/ during development: forward the API (and its WebSocket) to a daemon.
    proxy: { '/api': { target: process.env.XDPLB_API ?? 'http://127.0.0.1:8720', ws: true } },
  },
};

// An ES module: PM2 6 reads `export default` from .mjs files.
export default {
  apps: [{ script: 'server.js', instances: 2, exec_mode: 'fork' }],
  deploy: {
    production: {
      host: 'web1',
      ref: 'origin/main',
      repo: 'https://example.com/shop.git',
      path: '/srv/shop',
    },
  },
};

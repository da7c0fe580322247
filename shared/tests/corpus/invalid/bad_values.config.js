// Problems in a JavaScript file are reported by field path, without a line.
module.exports = {
  apps: [{ script: 'server.js', port: 'http', exec_mode: 'clustr' }],
  deploy: {
    production: { host: 'web1', ref: 'main', repo: 'r', path: '/srv', max_fail: -1 },
  },
};

// One app at the top level, with a deploy block beside it: PM2 reads both.
module.exports = {
  name: 'solo',
  script: 'sleep.js',
  env: { A: 'app' },
  env_production: { B: 'production' },
  deploy: {
    production: {
      host: 'web1.example.com',
      ref: 'origin/main',
      repo: 'git@example.com:acme/solo.git',
      path: '/var/www/solo',
      env: { C: 'deploy' },
    },
  },
};

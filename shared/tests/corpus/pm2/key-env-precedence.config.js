// deploy.<env>.env < env < env_<env>, as PM2 documents it.
module.exports = {
  apps: [
    {
      name: 'layers',
      script: 'sleep.js',
      env: { A: 'app', B: 'app', C: 'app' },
      env_production: { C: 'production', D: 'production' },
    },
  ],
  deploy: {
    production: {
      host: 'web1.example.com',
      ref: 'origin/main',
      repo: 'git@example.com:acme/layers.git',
      path: '/var/www/layers',
      env: { A: 'deploy', E: 'deploy' },
    },
  },
};

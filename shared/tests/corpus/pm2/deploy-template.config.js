// What `pm2 init` writes: the deploy block is a template with placeholders.
module.exports = {
  apps: [{ script: 'sleep.js', watch: '.' }, { script: './worker.py', watch: ['src'] }],
  deploy: {
    production: {
      user: 'SSH_USERNAME',
      host: 'SSH_HOSTMACHINE',
      ref: 'origin/master',
      repo: 'GIT_REPOSITORY',
      path: 'DESTINATION_PATH',
      'pre-deploy-local': '',
      'post-deploy': 'npm install && pm2 reload ecosystem.config.js --env production',
      'pre-setup': '',
    },
  },
};

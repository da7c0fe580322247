module.exports = {
  apps: [{ name: 'cron-job', script: './bin/job.sh', interpreter: 'none', autorestart: false, cron_restart: '@hourly' }],
};

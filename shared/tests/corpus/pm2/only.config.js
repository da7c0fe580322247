module.exports = {
  apps: [
    { name: 'api', script: 'sleep.js' },
    { name: 'worker', script: 'worker.py' },
    { name: 'cron-job', script: 'sleep.js', cron_restart: '0 * * * *' },
  ],
};

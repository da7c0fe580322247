module.exports = {
  apps: [
    { name: 'nightly', script: 'sleep.js', cron_restart: '0 3 * * *' },
    { name: 'off', script: 'sleep.js', cron_restart: 0 },
    { name: 'string-off', script: 'sleep.js', cron_restart: '0' },
  ],
};

const settings = require('ecosystem-settings-that-are-not-installed');
module.exports = { apps: [{ name: 'needs-module', script: 'sleep.js', env: settings }] };

// A JavaScript file computes its values: PM2 requires it, pmfleet asks node for the result.
const path = require('path');
module.exports = {
  apps: [
    {
      name: 'computed',
      script: path.join(__dirname, 'sleep.js'),
      instances: Number('2'),
      env: { STARTED_FROM: path.basename(__dirname).length > 0 ? 'here' : 'nowhere' },
      out_file: undefined,
      args: ['--when', String(1 + 1)],
    },
  ],
};

const base = { script: 'sleep.js', max_memory_restart: '64M' };
module.exports = {
  apps: ['a', 'b'].map((name) => ({ ...base, name, env: { WHICH: name } })),
};

export default {
  apps: [{ name: 'esm', script: 'sleep.js', instances: 2, exec_mode: 'fork', env: { MODULE: 'esm' } }],
};

module.exports = {
  apps: [
    { name: 'out', script: 'sleep.js', out: 'logs/out.log' },
    { name: 'output', script: 'sleep.js', output: 'logs/output.log', out: 'logs/ignored.log' },
    { name: 'out-log', script: 'sleep.js', out_log: 'logs/out_log.log', outFile: 'logs/ignored.log' },
    { name: 'out-file', script: 'sleep.js', out_file: 'logs/out_file.log', output: 'logs/ignored.log' },
  ],
};

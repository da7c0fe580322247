// An app whose memory grows by GROW_MB_PER_SEC (default 20) MiB every second, touching every
// page so the growth shows in RSS, until it reaches GROW_MAX_MB (default 2048). For
// max_memory_restart. Prints its RSS each second.
'use strict';

const perSecond = Number(process.env.GROW_MB_PER_SEC || 20);
const maxMb = Number(process.env.GROW_MAX_MB || 2048);
const kept = [];

setInterval(() => {
  if (kept.length * perSecond < maxMb) kept.push(Buffer.alloc(perSecond * 1024 * 1024, 1));
  const rss = Math.round(process.memoryUsage().rss / 1024 / 1024);
  console.log(`rss ${rss} MiB`);
}, 1000);

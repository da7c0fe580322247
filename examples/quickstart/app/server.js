// The sample app: answers every request with its version.
const http = require("http");
const fs = require("fs");
const version = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();
http
  .createServer((req, res) => res.end(`sample app version ${version}, pid ${process.pid}\n`))
  .listen(process.env.PORT || 3900);

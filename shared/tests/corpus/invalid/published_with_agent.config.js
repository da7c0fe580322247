// `published` is for environments without the agent.
module.exports = {
  apps: [{ name: "api", script: "server.js" }],
  deploy: {
    production: {
      host: "web1", ref: "origin/main", repo: "git@github.com:acme/shop.git",
      path: "/var/www/shop",
      published: "pm2 reload all",
    },
  },
};

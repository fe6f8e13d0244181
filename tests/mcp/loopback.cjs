// Preloaded into Node test servers: a listen() without a host binds 127.0.0.1 only.
const net = require("net");
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const a0 = args[0];
  if (typeof a0 === "number" || (typeof a0 === "string" && /^\d+$/.test(a0))) {
    if (typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  } else if (a0 && typeof a0 === "object" && a0.port !== undefined && !a0.host) {
    args[0] = Object.assign({}, a0, { host: "127.0.0.1" });
  }
  return orig.apply(this, args);
};

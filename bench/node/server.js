// Bare Node `ws` floor for mesh-py's benchmark: the Mesh envelope, nothing else.
// Echo: every request {"id","command","payload"} is answered with the same three members.
// Fan-out: "mesh/subscribe-channel" adds the connection to one set; "publish" sends one
// pre-encoded "mesh/subscription-message" frame to every member, then answers.
// Usage: node server.js [port]; prints "READY <port>" once listening (port 0: any free port).
"use strict";
const { WebSocketServer } = require("ws");

const CHANNEL = "bench:fanout";
const subscribers = new Set();
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: Number(process.argv[2] || 0),
  backlog: 511,
  perMessageDeflate: false,
  clientTracking: false,
});

wss.on("connection", (ws) => {
  ws.on("message", (data) => {
    const request = JSON.parse(data);
    const { id, command } = request;
    if (command === "mesh/subscribe-channel") {
      subscribers.add(ws);
      ws.send(JSON.stringify({ id, command, payload: { success: true, history: [] } }));
      return;
    }
    if (command === "publish") {
      const frame = JSON.stringify({
        command: "mesh/subscription-message",
        payload: { channel: CHANNEL, message: String(request.payload) },
      });
      for (const peer of subscribers) peer.send(frame);
      ws.send(JSON.stringify({ id, command, payload: true }));
      return;
    }
    ws.send(JSON.stringify({ id, command, payload: request.payload }));
  });
  ws.on("close", () => subscribers.delete(ws));
});

wss.on("listening", () => console.log(`READY ${wss.address().port}`));
process.on("SIGTERM", () => process.exit(0));

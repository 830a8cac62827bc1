// Starts the in-memory Firestore emulator (gRPC google.firestore.v1.Firestore, plain HTTP/2).
// Port: --port N, else $FIRESTORE_EMULATOR_PORT, else 8080. Data lives in memory only.
// Note: FirestoreServer.start() always binds 0.0.0.0 (the package offers no host option).
import { parseArgs } from "node:util";
import { FirestoreServer } from "@firestore-emulator/server";

const { values } = parseArgs({ options: { port: { type: "string" } } });
const raw = values.port ?? process.env.FIRESTORE_EMULATOR_PORT ?? "8080";
const port = Number(raw);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`firestore-emulator: invalid port ${JSON.stringify(raw)}`);
  process.exit(2);
}

const server = new FirestoreServer();
try {
  await server.start(port);
} catch (err) {
  console.error(`firestore-emulator: cannot listen on port ${port}: ${err.message}`);
  process.exit(1);
}
console.log(`firestore-emulator: listening on 0.0.0.0:${port} (pid ${process.pid})`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.once(signal, () => {
    server.stop();
    console.log(`firestore-emulator: ${signal} received, stopped`);
    process.exit(0);
  });
}
